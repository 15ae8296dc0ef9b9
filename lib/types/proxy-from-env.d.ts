// proxy-from-env 2 ships no type declarations; this is its one export.
declare module 'proxy-from-env' {
  /**
   * The proxy URL for a request URL from HTTP_PROXY / HTTPS_PROXY / ALL_PROXY and NO_PROXY
   * (either case), read at the time of the call; '' when the request goes direct.
   */
  export function getProxyForUrl(url: string | URL): string
}
