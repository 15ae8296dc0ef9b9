// The lint gate of `npm test`: typescript-eslint's recommended rules over lib/, test/, bench/ and
// examples/, with the few habits this codebase keeps (see the README's design notes).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import globals from 'globals'

export default tseslint.config(
  { ignores: ['dist/', 'docs/', 'coverage/', '.tap/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Unused names are errors, except those spelled `_name` on purpose (a destructured field left out).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // `node:` imports only: one way to name a built-in module.
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^(fs|path|os|child_process|worker_threads|events|http|https|net|url|util|stream|crypto|readline)(/.*)?$', message: 'Import Node built-ins with the node: prefix.' }] },
      ],
    },
  },
  {
    // Only the CLI entry ends the process.
    files: ['lib/**/*.ts'],
    ignores: ['lib/cli/bin.ts'],
    rules: { 'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'Only the CLI entry (lib/cli/bin.ts) ends the process.' }] },
  },
)
