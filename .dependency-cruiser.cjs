// The layering of src/ (docs/ARCHITECTURE.md), checked by `npm run lint`:
//   common, config                    → nothing above them
//   storage, convert, volumes         → common, config
//   cache                             → storage, convert (and below)
//   jobs                              → cache, storage, convert, volumes (and below)
//   health, metrics                   → anything but cli
//   cli                               → DTO types of jobs/cache/common only (no Nest app)
// and no import cycles anywhere.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle means a part imports its coordinator: hand it a callback instead (STYLE.md).',
      from: { path: '^src' },
      to: { circular: true },
    },
    {
      name: 'base-stays-below',
      severity: 'error',
      comment: 'common/ and config/ are used by everyone and use no domain folder.',
      from: { path: '^src/(common|config)/' },
      to: { path: '^src/(storage|convert|volumes|cache|jobs|health|metrics|cli)/' },
    },
    {
      name: 'adapters-stay-below',
      severity: 'error',
      comment: 'storage/, convert/ and volumes/ are adapters and rules: they never reach up.',
      from: { path: '^src/(storage|convert|volumes)/' },
      to: { path: '^src/(cache|jobs|health|metrics|cli)/' },
    },
    {
      name: 'cache-below-jobs',
      severity: 'error',
      comment: 'The cache serves jobs through the ImageStore port; it never imports jobs.',
      from: { path: '^src/cache/' },
      to: { path: '^src/(jobs|health|metrics|cli)/' },
    },
    {
      name: 'jobs-below-observers',
      severity: 'error',
      from: { path: '^src/jobs/' },
      to: { path: '^src/(health|metrics|cli)/' },
    },
    {
      name: 'cli-loads-no-daemon',
      severity: 'error',
      comment: 'lvp starts in ~70 ms because it loads no Nest application: only DTOs and pure helpers.',
      from: { path: '^src/cli/' },
      to: { path: '^src/(jobs|cache)/.*\\.(service|module|controller|pipeline|runner|repository)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.spec\\.ts$' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
