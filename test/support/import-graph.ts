/**
 * The import graph of a folder of TypeScript modules, read with the compiler's own import scanner
 * (`ts.preProcessFile`), so that NodeNext's `./x.js` specifiers map to the `./x.ts` beside them.
 * Every relative import counts, `import type` and `export … from` included: a type-only edge
 * loads nothing at run time, but it still ties one layer to another.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, relative, resolve } from 'node:path'
import ts from 'typescript'

/** Module path (relative to the graph's root, `/`-separated) -> the modules it imports. */
export type ImportGraph = Map<string, string[]>

/** The relative imports of one file, resolved to `.ts` files that exist. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
  const out: string[] = []
  for (const { fileName } of importedFiles) {
    if (!fileName.startsWith('.')) continue
    const target = resolve(dirname(file), fileName.replace(/\.js$/, '.ts'))
    if (existsSync(target)) out.push(target)
  }
  return out
}

/** Walks every module reachable from `entries` (absolute paths), naming them relative to `root`. */
export function importGraph(root: string, entries: string[]): ImportGraph {
  const graph: ImportGraph = new Map()
  const name = (file: string) => relative(root, file).split('\\').join('/')
  const pending = [...entries]
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (graph.has(name(file))) continue
    const targets = importsOf(file)
    graph.set(name(file), targets.map(name))
    pending.push(...targets)
  }
  return graph
}

/** The modules reachable from `start`, itself included. */
export function reachable(graph: ImportGraph, start: string): Set<string> {
  const seen = new Set<string>()
  const pending = [start]
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (seen.has(node)) continue
    seen.add(node)
    pending.push(...(graph.get(node) ?? []))
  }
  return seen
}

/**
 * Every import cycle, each as the path `a -> b -> … -> a`: one per strongly connected component
 * of more than one module (or a module importing itself), found with Tarjan's algorithm.
 */
export function importCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []
  const visit = (node: string): void => {
    index.set(node, index.size)
    low.set(node, index.get(node) as number)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) as number, index.get(next) as number))
      }
    }
    if (low.get(node) !== index.get(node)) return
    const component: string[] = []
    for (;;) {
      const member = stack.pop() as string
      onStack.delete(member)
      component.push(member)
      if (member === node) break
    }
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) components.push(component)
  }
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node)
  return components.map((component) => cyclePath(graph, new Set(component)))
}

/** One concrete cycle through a strongly connected component, for the error message. */
function cyclePath(graph: ImportGraph, component: Set<string>): string[] {
  const start = [...component].sort()[0] as string
  // Breadth-first from start back to start, staying inside the component: the shortest cycle.
  const cameFrom = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const node = queue.shift() as string
    for (const next of graph.get(node) ?? []) {
      if (!component.has(next)) continue
      if (next === start) {
        const path = [start]
        for (let at: string | undefined = node; at !== undefined && at !== start; at = cameFrom.get(at)) path.splice(1, 0, at)
        return [...path, start]
      }
      if (!cameFrom.has(next)) {
        cameFrom.set(next, node)
        queue.push(next)
      }
    }
  }
  return [start, start]
}
