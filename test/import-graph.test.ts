// The import graph of lib/ has no cycles, and the module behind watch() (and the package entry)
// loads none of the daemon's code. The walker itself is tested on a small fixture graph. The
// daemon's process loads the packages it needs only when it needs them (a real process, its
// module resolutions written down by a hook).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { importCycles, importGraph, reachable } from './support/import-graph.js'
import { BIN } from './fixtures/daemon/helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const lib = join(here, '..', 'lib')
const fixtures = join(here, 'fixtures', 'import-graph')

const modulesOf = (folder: string): string[] => (readdirSync(folder, { recursive: true }) as string[]).filter((name) => name.endsWith('.ts')).map((name) => join(folder, name))

t.test('the walker follows .js specifiers to .ts files, type-only imports and re-exports included', async (t) => {
  const graph = importGraph(fixtures, [join(fixtures, 'entry.ts')])
  t.same([...graph.keys()].sort(), ['a.ts', 'b.ts', 'c.ts', 'entry.ts', 'leaf.ts', 'types.ts'])
  t.same(graph.get('c.ts'), ['types.ts', 'leaf.ts'], 'import type and export … from are edges; node: imports are not')
  t.same([...reachable(graph, 'b.ts')].sort(), ['a.ts', 'b.ts', 'c.ts', 'leaf.ts', 'types.ts'])
  t.same([...reachable(graph, 'leaf.ts')], ['leaf.ts'])
})

t.test('the walker finds the fixture cycle, and nothing once it is broken', async (t) => {
  const graph = importGraph(fixtures, modulesOf(fixtures))
  t.same(importCycles(graph), [['a.ts', 'b.ts', 'c.ts', 'types.ts', 'a.ts']])
  const broken = new Map(graph)
  broken.set('types.ts', [])
  t.same(importCycles(broken), [])
  t.same(importCycles(new Map([['self.ts', ['self.ts']]])), [['self.ts', 'self.ts']], 'a module importing itself')
  t.same(
    importCycles(
      new Map([
        ['x.ts', ['y.ts']],
        ['y.ts', ['x.ts']],
        ['p.ts', ['q.ts']],
        ['q.ts', ['p.ts']],
      ]),
    ),
    [
      ['p.ts', 'q.ts', 'p.ts'],
      ['x.ts', 'y.ts', 'x.ts'],
    ],
    'each cycle once',
  )
})

const graph = importGraph(lib, modulesOf(lib))

t.test('lib/ has no import cycle', async (t) => {
  const cycles = importCycles(graph)
  t.same(
    cycles.map((cycle) => cycle.join(' -> ')),
    [],
    'every import goes one way',
  )
})

t.test('the model at the bottom imports nothing of ours', async (t) => {
  t.same(graph.get('model.ts'), [])
})

for (const entry of ['watch.ts', 'index.ts']) {
  t.test(`no daemon/ module is reachable from lib/${entry}`, async (t) => {
    const loaded = reachable(graph, entry)
    t.ok(loaded.has('watcher.ts') && loaded.has('actor/host.ts'), 'the walk reaches the facade and the host')
    t.same([...loaded].filter((name) => name.startsWith('daemon/')).sort(), [])
    t.comment(`${loaded.size} modules behind lib/${entry}`)
  })
}

t.test('a daemon without --http loads neither the HTTP client, the HTTP face nor the worker pool', async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'repo')
  mkdirSync(join(root, '.aim'), { recursive: true })
  const loaded = join(dir, 'loaded.txt')
  // A module hook that writes down every module the process resolves.
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs'\nexport async function resolve(specifier, context, next) {\n  const result = await next(specifier, context)\n  appendFileSync(${JSON.stringify(loaded)}, result.url + '\\n')\n  return result\n}\n`,
  )
  writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)})\n`)
  const daemon = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, BIN, '--repo', root, 'start', '--json-logs', '--log-level', 'debug', '--poll-ms', '100'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(daemon, 'exit')
  t.teardown(() => void daemon.kill('SIGKILL'))
  // Two scans: past its start, into its steady state.
  let scans = 0
  for await (const line of createInterface({ input: daemon.stdout })) if ((JSON.parse(line) as { event?: string }).event === 'scan' && ++scans === 2) break
  daemon.kill('SIGTERM')
  t.equal((await exited)[0], 0, 'stopped cleanly')
  const packages = new Set(
    readFileSync(loaded, 'utf8')
      .split('\n')
      .map((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1])
      .filter((name): name is string => name !== undefined),
  )
  t.ok(packages.has('commander') && packages.has('proper-lockfile'), `the hook saw the packages a daemon uses (${[...packages].join(', ')})`)
  for (const name of ['node-fetch', 'http-proxy-agent', 'https-proxy-agent', 'proxy-from-env', 'prom-client', 'piscina', 'comlink', '@inquirer/prompts']) t.notOk(packages.has(name), `${name} is not loaded`)
})
