// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'var/**', '.tmp/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
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
    files: ['src/config/**', 'src/main.ts', 'test/**', 'scripts/**', '*.mjs', 'src/cli/**'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
