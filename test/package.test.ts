// The package as a user gets it: `npm pack`, then installed into a scratch consumer folder, used
// with `import` and with `require`, and its `aim-watcher` executable run from node_modules/.bin.
//
// The consumer installs offline (`npm ci --offline`): its lock file lists this package's
// tarball and the production entries of our own lock file, whose tarballs the npm cache already
// holds since `npm ci` installed them here. (A plain `npm install --offline ./pkg.tgz` would
// need the registry's metadata documents, which `npm ci` does not cache.)
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RUN_EVENT_KINDS } from '../lib/model.js'
import { exec, type Ran } from './support/child.js'

const projectRoot = fileURLToPath(new URL('..', import.meta.url))
const ownPackage = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
  name: string
  version: string
  license: string
  engines: Record<string, string>
  bin: Record<string, string>
  dependencies: Record<string, string>
}
interface LockEntry {
  dev?: boolean
  devOptional?: boolean
}
const ownLock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }

/**
 * The environment of a user's shell: without what `npm test` and tap add (npm's
 * `npm_config_local_prefix` would point a nested npm at this project; tap's NODE_OPTIONS loads
 * its hooks), keeping only npm's cache folder.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|TAP|_TAPJS|NODE_OPTIONS$|TS_NODE)/i.test(name)) continue
    env[name] = value
  }
  if (process.env['npm_config_cache'] !== undefined) env['npm_config_cache'] = process.env['npm_config_cache']
  // The consumer's runs are about the package, not the daemon: none is started for them.
  env['AIM_STATUS_DAEMON'] = '0'
  return env
}

const run = (command: string, args: string[], cwd: string): Promise<Ran> => exec(command, args, { cwd, env: userEnv() })

t.test('the packed tarball installs offline and works with import, require and its executable', async (t) => {
  t.ok(existsSync(join(projectRoot, 'dist', 'index.js')), 'dist/ is built (npm test builds first)')
  const folder = t.testdir({ consumer: {} })
  // --ignore-scripts: `prepare` would rebuild dist/ while other test files run from it.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', folder], projectRoot)
  t.equal(packed.code, 0, packed.stderr)
  const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
  const files = report!.files.map((f) => f.path)
  t.ok(files.includes('LICENSE'), 'the licence text is shipped')
  t.match(readFileSync(join(projectRoot, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/)
  t.same(
    files.filter((f) => !/^(dist\/|LICENSE$|README\.md$|package\.json$)/.test(f)),
    [],
    'nothing but dist/, the README, the licence and package.json',
  )
  const tarball = report!.filename.replace(/^@/, '').replace('/', '-')
  t.ok(existsSync(join(folder, tarball)), `${tarball} written`)

  // A consumer as `npm init -y` makes it today: CommonJS.
  const consumer = join(folder, 'consumer')
  const spec = `file:../${tarball}`
  const manifest = { name: 'consumer', version: '1.0.0', type: 'commonjs', private: true, dependencies: { [ownPackage.name]: spec } }
  const packages: Record<string, unknown> = {
    '': { name: manifest.name, version: manifest.version, dependencies: manifest.dependencies },
    [`node_modules/${ownPackage.name}`]: {
      version: ownPackage.version,
      resolved: spec,
      license: ownPackage.license,
      dependencies: ownPackage.dependencies,
      bin: ownPackage.bin,
      engines: ownPackage.engines,
    },
  }
  for (const [path, entry] of Object.entries(ownLock.packages)) if (path !== '' && entry.dev !== true && entry.devOptional !== true) packages[path] = entry
  writeFileSync(join(consumer, 'package.json'), JSON.stringify(manifest, null, 2))
  writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify({ name: manifest.name, version: manifest.version, lockfileVersion: 3, requires: true, packages }, null, 2))
  const installed = await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], consumer)
  t.equal(installed.code, 0, installed.stderr)

  const installedRoot = join(consumer, 'node_modules', ...ownPackage.name.split('/'))
  const map = JSON.parse(readFileSync(join(installedRoot, 'dist', 'index.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] }
  t.equal(map.sourcesContent?.length, map.sources.length, 'a shipped source map carries its sources')
  t.match(map.sourcesContent?.[0], /export \{/)

  // Each style opens a real run through the installed package (its worker thread included),
  // finishes it, and prints what it saw.
  const use = (load: string, style: string): string => `${load}
async function main() {
  const run = await watch({ repo: ${JSON.stringify(join(consumer, `runs-${style}`))}, checkins: false })
  run.reportProgress(5)
  await run.reportSuccessfulFinish()
  await run.close()
  console.log(JSON.stringify({ style: ${JSON.stringify(style)}, status: run.status, kinds: RUN_EVENT_KINDS.length }))
}
main().catch((error) => { console.error(error); process.exitCode = 1 })
`
  writeFileSync(join(consumer, 'with-require.js'), use(`const { watch, RUN_EVENT_KINDS } = require('${ownPackage.name}')`, 'require'))
  writeFileSync(join(consumer, 'with-import.mjs'), use(`import { watch, RUN_EVENT_KINDS } from '${ownPackage.name}'`, 'import'))
  for (const [script, style] of [
    ['with-require.js', 'require'],
    ['with-import.mjs', 'import'],
  ] as const) {
    const res = await run(process.execPath, [script], consumer)
    t.equal(res.code, 0, `${style}: ${res.stderr}`)
    t.match(JSON.parse(res.stdout.trim()), { style, status: 'finished', kinds: RUN_EVENT_KINDS.length }, `${style}: a run watched and finished`)
  }

  const bin = join(consumer, 'node_modules', '.bin', 'aim-watcher')
  const version = await run(bin, ['--version'], consumer)
  t.equal(version.code, 0, version.stderr)
  t.equal(version.stdout.trim(), ownPackage.version, 'aim-watcher --version')
  const listed = await run(bin, ['--repo', join(consumer, 'runs-import'), 'notifiers', 'list', '--json'], consumer)
  t.equal(listed.code, 0, listed.stderr)
  t.same(JSON.parse(listed.stdout), [], 'the installed executable reads the repo')
})
