import { IsBoolean, IsOptional, IsString } from 'class-validator';
import { Env } from '../env.decorator';

/** Which images the daemon accepts: verified ones, from hosts and addresses it may reach. */
export class ImageSettings {
  @Env('REQUIRE_CHECKSUM', {
    allowed: 'true, false',
    doc: 'Refuse images without an expected sha256 (request `checksum` or a `.sha256` sidecar). When off, the sha256 is still computed and recorded, and the job says the image was unverified.',
  })
  @IsBoolean()
  requireChecksum = false;

  @Env('IMAGE_HOST_ALLOWLIST', {
    allowed: 'comma-separated host names',
    doc: 'Comma list of hosts http(s) image URLs may name (`*.example.com` matches subdomains), checked on every redirect too. Empty: any host.',
  })
  @IsOptional()
  @IsString()
  hostAllowlist?: string;

  @Env('IMAGE_ALLOW_ADDRESSES', {
    allowed: 'comma-separated CIDRs, e.g. 127.0.0.1/32',
    doc: 'Comma list of CIDRs that http(s) image URLs may reach although they are loopback (127.0.0.0/8, ::1) or link-local (169.254.0.0/16, fe80::/10, the metadata address), also when written as IPv4-mapped IPv6 (::ffff:127.0.0.1). Checked after DNS resolution and on every redirect.',
  })
  @IsOptional()
  @IsString()
  allowAddresses?: string;
}
