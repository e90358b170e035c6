// @ts-check
import eslint from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'var/**', '.tmp/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: 'Read settings through the injected Settings object (src/config), not process.env.',
        },
      ],
    },
  },
  {
    // One place runs programs (argument arrays, process-group kill, timeouts): src/common/exec.ts,
    // which hands them to its own thread, where program-launch.ts calls execa.
    files: ['src/**/*.ts'],
    ignores: ['src/common/exec.ts', 'src/common/program-launch.ts', 'src/**/*.spec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'execa', message: 'Run programs through src/common/exec.ts (one adapter per program).' },
            { name: 'child_process', message: 'Run programs through src/common/exec.ts.' },
            { name: 'node:child_process', message: 'Run programs through src/common/exec.ts.' },
          ],
        },
      ],
      // A file over ~300 lines is doing two jobs (STYLE.md, Size): split it into parts that own their state.
      'max-lines': ['warn', { max: 300, skipBlankLines: false, skipComments: false }],
    },
  },
  {
    // Entry points and tooling may read the environment; tests read loosely typed JSON bodies.
    files: ['src/config/**', 'src/main.ts', 'src/cli/**', 'test/**', 'bench/**', 'scripts/**', '**/*.mjs'],
    rules: { 'no-restricted-syntax': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
);
