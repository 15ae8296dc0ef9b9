/**
 * The `slack` notifier: a Slack incoming webhook, as Python Aim sends it (POST `{"text": …}`).
 * Unlike Aim, the answer is checked: Slack answers `200 ok` on success and a plain-text error
 * code otherwise (https://api.slack.com/messaging/webhooks#handling_errors): `400
 * invalid_payload`, `403 invalid_token`, `404 no_service`, `404 channel_not_found`, `410
 * channel_is_archived`, … — all permanent: the webhook must be fixed. 429 (rate limited, with
 * `Retry-After`) and 5xx are transient.
 * @module
 */
import type { NotifierType, DeliveryOutcome } from '../contract.js'
import { classifyStatus, shortBody, type HttpAnswer } from '../http.js'
import { httpNotifier } from '../http-notifier.js'
import { checkMessageArgument } from './arguments.js'
import { checkHttpUrl } from './url-argument.js'

/** What a Slack webhook's answer means: delivered only on 2xx with the body `ok`. */
export function classifySlackAnswer(answer: HttpAnswer): DeliveryOutcome {
  const outcome = classifyStatus(answer)
  if (outcome.kind !== 'delivered') return outcome
  if (answer.body.trim() === 'ok') return outcome
  // A 2xx that is not Slack's `ok` means the URL is not a Slack webhook (a proxy, a login page):
  // trying again would not change that.
  return { kind: 'permanent', error: `HTTP ${answer.status} without Slack's "ok": ${shortBody(answer.body) || '(empty body)'}` }
}

export const slackType: NotifierType = {
  type: 'slack',
  aim: true,
  secretArguments: ['url'],
  flags: [{ flag: '--webhook-url', argument: 'url', required: true, secret: true, prompt: 'Slack webhook URL', placeholder: 'URL', description: 'slack: the incoming-webhook URL (secret)' }],
  validate(args) {
    return checkMessageArgument(args, { url: checkHttpUrl('slack', 'url', args['url']) })
  },
  create(entry) {
    return httpNotifier({ entry, url: String(entry.arguments['url']), request: (_event, rendered) => ({ body: JSON.stringify({ text: rendered }) }), classify: classifySlackAnswer })
  },
}
