import { IsOptional, IsString } from 'class-validator';
import { Env } from '../env.decorator';

/** The HTTPS listener's certificate, key and the CA of the clients it accepts (mTLS). */
export class TlsSettings {
  @Env('TLS_CERT_FILE', {
    aliases: ['SERVER_CERT'],
    allowed: 'a file path',
    doc: 'PEM certificate (chain) of the HTTPS listener. With TLS_KEY_FILE it turns HTTPS on (TLS 1.2+). Re-read on SIGHUP.',
  })
  @IsOptional()
  @IsString()
  certFile?: string;

  @Env('TLS_KEY_FILE', {
    aliases: ['SERVER_KEY'],
    allowed: 'a file path',
    doc: 'PEM private key of the HTTPS listener. Re-read on SIGHUP.',
  })
  @IsOptional()
  @IsString()
  keyFile?: string;

  @Env('CLIENT_CA_CERT', {
    allowed: 'a file path',
    doc: 'PEM CA bundle: a client certificate that chains to it authenticates a request (mTLS). Needs HTTPS. There is no default CA. Re-read on SIGHUP.',
  })
  @IsOptional()
  @IsString()
  clientCaCert?: string;
}
