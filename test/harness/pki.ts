import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyPair {
  cert: string;
  key: string;
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A throw-away certificate authority made with openssl, issuing server and client certificates. */
export class TestCa {
  readonly cert: string;
  private readonly key: string;

  constructor(
    private readonly dir: string,
    readonly name: string,
  ) {
    this.cert = join(dir, `${name}.crt`);
    this.key = join(dir, `${name}.key`);
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      this.key,
      '-out',
      this.cert,
      '-subj',
      `/CN=${name}`,
      '-days',
      '2',
    );
  }

  /** A certificate for `cn`, with the given subjectAltName (e.g. `IP:127.0.0.1` or `DNS:x`). */
  issue(cn: string, san: string, usage: 'serverAuth' | 'clientAuth'): KeyPair {
    const base = join(this.dir, `${this.name}-${cn}`);
    const ext = `${base}.ext`;
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.csr`,
      '-subj',
      `/CN=${cn}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      this.cert,
      '-CAkey',
      this.key,
      '-CAcreateserial',
      '-out',
      `${base}.crt`,
      '-days',
      '2',
      '-extfile',
      ext,
    );
    return { cert: `${base}.crt`, key: `${base}.key` };
  }
}
