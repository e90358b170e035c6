import { IsBoolean, IsOptional, IsString } from 'class-validator';
import { Env } from '../env.decorator';

/** Who may call the API. mTLS itself is on when tls.clientCaCert is set. */
export class AuthSettings {
  @Env('ALLOWED_CLIENT_SUBJECTS', {
    allowed: 'comma-separated names',
    doc: 'Comma list of client certificate CNs or SAN DNS/URI names allowed; others get 403. Empty: any certificate from CLIENT_CA_CERT.',
  })
  @IsOptional()
  @IsString()
  allowedClientSubjects?: string;

  @Env('API_TOKENS_FILE', {
    allowed: 'a file path (mode 0600 or stricter)',
    doc: 'File of API tokens, one `name:token` or `name:sha256:<hex of token>` per line (# comments). Must not be readable by group or others. Re-read on SIGHUP.',
  })
  @IsOptional()
  @IsString()
  apiTokensFile?: string;

  @Env('AUTH_DISABLED', {
    allowed: 'true, false',
    doc: 'Run without any authentication even on a non-loopback HOST. For isolated labs only; warned about at every start.',
  })
  @IsBoolean()
  disabled = false;

  @Env('METRICS_REQUIRE_AUTH', {
    allowed: 'true, false',
    doc: '/metrics needs the same credentials as the API (it is open by default, like the health probes).',
  })
  @IsBoolean()
  metricsRequireAuth = false;
}
