import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadSettings, parseNumber } from './load-settings';

/** Runs loadSettings and returns the ConfigError it throws. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadSettings(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`loadSettings(${JSON.stringify(env)}) did not throw`);
}

describe('loadSettings: settings from the environment', () => {
  describe('with an empty environment', () => {
    const settings = loadSettings({});
    const defaults: [string, unknown, unknown][] = [
      ['listens on 127.0.0.1', settings.host, '127.0.0.1'],
      ['listens on port 8080', settings.port, 8080],
      ['uses the file volume backend', settings.volumes.backend, 'file'],
      ['keeps jobs in ./var/provisioner.db', settings.dbPath, './var/provisioner.db'],
      ['runs 2 jobs at once', settings.jobs.maxConcurrent, 2],
      ['logs json', settings.log.format, 'json'],
      ['has no S3 endpoint', settings.s3.endpoint, undefined],
    ];
    for (const [what, actual, expected] of defaults) {
      it(what, () => assert.equal(actual, expected));
    }
  });

  describe('variable names and aliases', () => {
    it('reads DATABASE_PATH when DB_PATH is not set', () => {
      assert.equal(loadSettings({ DATABASE_PATH: '/srv/jobs.db' }).dbPath, '/srv/jobs.db');
    });

    it('prefers DB_PATH when both are set', () => {
      assert.equal(loadSettings({ DB_PATH: '/a.db', DATABASE_PATH: '/b.db' }).dbPath, '/a.db');
    });

    it('treats an empty DB_PATH as not set and falls back to DATABASE_PATH', () => {
      assert.equal(loadSettings({ DB_PATH: '', DATABASE_PATH: '/b.db' }).dbPath, '/b.db');
    });

    it('reads the S3 access key from MINIO_ACCESS_KEY_ID', () => {
      assert.equal(loadSettings({ MINIO_ACCESS_KEY_ID: 'AKIA1' }).s3.accessKey, 'AKIA1');
    });

    it('prefers MINIO_ACCESS_KEY over MINIO_ACCESS_KEY_ID', () => {
      assert.equal(loadSettings({ MINIO_ACCESS_KEY: 'a', MINIO_ACCESS_KEY_ID: 'b' }).s3.accessKey, 'a');
    });
  });

  describe('value conversion', () => {
    const cases: [string, NodeJS.ProcessEnv, (s: ReturnType<typeof loadSettings>) => unknown, unknown][] = [
      ['a port number', { PORT: '9000' }, (s) => s.port, 9000],
      ['a port number with spaces around it', { PORT: ' 9000 ' }, (s) => s.port, 9000],
      ['a byte count with a G suffix', { CACHE_MAX_BYTES: '50G' }, (s) => s.cache.maxBytes, 50 * 1024 ** 3],
      [
        'a byte count with a MiB suffix',
        { CACHE_MAX_BYTES: '512MiB' },
        (s) => s.cache.maxBytes,
        512 * 1024 ** 2,
      ],
      ['"no" as false', { MINIO_USE_SSL: 'no' }, (s) => s.s3.useSsl, false],
      ['"TRUE" as true', { REQUIRE_CHECKSUM: 'TRUE' }, (s) => s.images.requireChecksum, true],
      ['"0" as false', { MINIO_INSECURE_SKIP_VERIFY: '0' }, (s) => s.s3.insecureSkipVerify, false],
    ];
    for (const [what, env, pick, expected] of cases) {
      it(`reads ${what}`, () => assert.equal(pick(loadSettings(env)), expected));
    }
  });

  describe('refuses an invalid value with a message naming the variable, the value and what is allowed', () => {
    const cases: [NodeJS.ProcessEnv, string, string][] = [
      [{ PORT: 'abc' }, 'PORT="abc"', '(allowed: 0-65535)'],
      [{ PORT: '70000' }, 'PORT="70000"', '(allowed: 0-65535)'],
      [{ PORT: '8080abc' }, 'PORT="8080abc"', '(allowed: 0-65535)'],
      [{ MAX_CONCURRENT_JOBS: '0' }, 'MAX_CONCURRENT_JOBS="0"', '(allowed: 1-64)'],
      [{ VOLUME_BACKEND: 'zfs' }, 'VOLUME_BACKEND="zfs"', '(allowed: file, lvm, lvm-thin)'],
      [{ LOG_FORMAT: 'xml' }, 'LOG_FORMAT="xml"', '(allowed: json, text)'],
      [{ LVM_VOLUME_GROUP: '-bad' }, 'LVM_VOLUME_GROUP="-bad"', '(allowed: an LVM VG name)'],
      [{ MINIO_USE_SSL: 'maybe' }, 'MINIO_USE_SSL="maybe"', '(allowed: true, false)'],
    ];
    for (const [env, named, allowed] of cases) {
      it(named, () => {
        const { message } = configError(env);
        assert.ok(message.startsWith(`${named}: `), message);
        assert.ok(message.endsWith(allowed), message);
      });
    }

    it('says why: a port above the range', () => {
      assert.equal(
        configError({ PORT: '70000' }).message,
        'PORT="70000": must not be greater than 65535 (allowed: 0-65535)',
      );
    });

    it('names the alias that was used', () => {
      assert.match(
        configError({ DATABASE_PATH: '/x.db', MINIO_ACCESS_KEY_ID: 'k', PORT: '-1' }).message,
        /^PORT="-1": /,
      );
    });

    it('lists every invalid variable, one per line', () => {
      const lines = configError({ PORT: 'abc', LOG_FORMAT: 'xml' }).message.split('\n');
      assert.equal(lines.length, 2);
      assert.ok(lines.some((l) => l.startsWith('PORT="abc"')));
      assert.ok(lines.some((l) => l.startsWith('LOG_FORMAT="xml"')));
    });
  });

  describe('CONFIG_FILE', () => {
    let dir: string;
    let file: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'lvp-load-settings-'));
      file = join(dir, 'provisioner.env');
      writeFileSync(
        file,
        '# an env file\nPORT=9100\nHOST=127.0.0.2\nLOG_FORMAT="text"\nDATABASE_PATH=/srv/file.db\n',
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('reads the settings in the file', () => {
      const settings = loadSettings({ CONFIG_FILE: file });
      assert.equal(settings.port, 9100);
      assert.equal(settings.host, '127.0.0.2');
      assert.equal(settings.log.format, 'text');
      assert.equal(settings.dbPath, '/srv/file.db');
    });

    it('lets the real environment win over the file', () => {
      const settings = loadSettings({ CONFIG_FILE: file, PORT: '9200', DB_PATH: '/srv/env.db' });
      assert.equal(settings.port, 9200);
      assert.equal(settings.dbPath, '/srv/env.db');
      assert.equal(settings.host, '127.0.0.2');
    });

    it('lets the real environment win even when it uses another alias than the file', () => {
      const other = join(dir, 'db-path.env');
      writeFileSync(other, 'DB_PATH=/srv/file.db\n');
      assert.equal(loadSettings({ CONFIG_FILE: other, DATABASE_PATH: '/srv/env.db' }).dbPath, '/srv/env.db');
    });

    it('refuses a file that does not exist, naming it', () => {
      const missing = join(dir, 'missing.env');
      const { message } = configError({ CONFIG_FILE: missing });
      assert.ok(message.startsWith(`CONFIG_FILE=${missing}: cannot read it`), message);
    });

    it('names the variable of an invalid value that came from the file', () => {
      const bad = join(dir, 'bad.env');
      writeFileSync(bad, 'VOLUME_BACKEND=zfs\n');
      assert.match(configError({ CONFIG_FILE: bad }).message, /^VOLUME_BACKEND="zfs": /);
    });
  });
});

describe('parseNumber: integers with an optional binary size suffix', () => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['8080', 8080],
    ['-1', -1],
    ['1K', 1024],
    ['2M', 2 * 1024 ** 2],
    ['50G', 50 * 1024 ** 3],
    ['50g', 50 * 1024 ** 3],
    ['50 GiB', 50 * 1024 ** 3],
    ['1T', 1024 ** 4],
    ['1TB', 1024 ** 4],
    ['', undefined],
    ['abc', undefined],
    ['8080abc', undefined],
    ['1.5G', undefined],
    ['G', undefined],
    ['5P', undefined],
  ];
  for (const [text, value] of cases) {
    it(`reads ${JSON.stringify(text)} as ${value}`, () => assert.equal(parseNumber(text), value));
  }
});

describe('loadSettings: combinations that are unsafe or incomplete', () => {
  it('refuses a non-loopback HOST without any authentication, saying how to configure it', () => {
    assert.throws(
      () => loadSettings({ HOST: '0.0.0.0' }),
      (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /HOST=0\.0\.0\.0/);
        assert.match(error.message, /API_TOKENS_FILE/);
        assert.match(error.message, /CLIENT_CA_CERT/);
        return true;
      },
    );
  });

  it('allows a non-loopback HOST with tokens, with mTLS, or with the AUTH_DISABLED escape hatch', () => {
    assert.equal(loadSettings({ HOST: '0.0.0.0', API_TOKENS_FILE: '/etc/x/tokens' }).host, '0.0.0.0');
    assert.equal(
      loadSettings({ HOST: '0.0.0.0', TLS_CERT_FILE: '/c', TLS_KEY_FILE: '/k', CLIENT_CA_CERT: '/ca' }).host,
      '0.0.0.0',
    );
    assert.equal(loadSettings({ HOST: '0.0.0.0', AUTH_DISABLED: 'true' }).auth.disabled, true);
  });

  it('wants TLS_CERT_FILE and TLS_KEY_FILE together, and HTTPS for CLIENT_CA_CERT', () => {
    assert.throws(() => loadSettings({ TLS_CERT_FILE: '/c' }), /TLS_CERT_FILE and TLS_KEY_FILE go together/);
    assert.throws(() => loadSettings({ CLIENT_CA_CERT: '/ca' }), /CLIENT_CA_CERT \(mTLS\) needs HTTPS/);
  });

  it('accepts the original service names SERVER_CERT and SERVER_KEY', () => {
    const settings = loadSettings({ SERVER_CERT: '/c', SERVER_KEY: '/k' });
    assert.equal(settings.tls.certFile, '/c');
    assert.equal(settings.tls.keyFile, '/k');
  });
});
