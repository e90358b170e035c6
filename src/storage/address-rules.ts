import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { SourceError } from '../common/errors';

/**
 * Addresses an image URL may not reach unless IMAGE_ALLOW_ADDRESSES says so. The IPv4 ranges
 * also cover their IPv4-mapped IPv6 forms (::ffff:a.b.c.d): a connection to one reaches the IPv4
 * address, and node's BlockList matches an IPv4 subnet against them.
 */
const FORBIDDEN: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['127.0.0.0', 8, 'ipv4', 'a loopback address'],
  ['0.0.0.0', 8, 'ipv4', 'an unspecified address'],
  ['169.254.0.0', 16, 'ipv4', 'a link-local address (169.254.169.254 is the cloud metadata service)'],
  ['100.100.100.200', 32, 'ipv4', 'a cloud metadata address'],
  ['::1', 128, 'ipv6', 'a loopback address'],
  ['::', 128, 'ipv6', 'an unspecified address'],
  ['fe80::', 10, 'ipv6', 'a link-local address'],
  ['fd00:ec2::254', 128, 'ipv6', 'a cloud metadata address'],
];

/** The settings the rules are made of, as plain data (a download thread receives them in a message). */
export interface AddressRulesConfig {
  /** IMAGE_HOST_ALLOWLIST */
  hostAllowlist?: string;
  /** IMAGE_ALLOW_ADDRESSES */
  allowAddresses?: string;
}

export interface VettedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Where http(s) image URLs may go (server-side request forgery guard): hosts from
 * IMAGE_HOST_ALLOWLIST when set, and never loopback, link-local or metadata addresses unless
 * IMAGE_ALLOW_ADDRESSES allows them. Checked after DNS resolution, for every redirect, and the
 * connection goes to the address that was checked (no second lookup to rebind).
 */
export class AddressRules {
  private readonly hosts: string[];
  private readonly allowed = new BlockList();

  constructor(readonly config: AddressRulesConfig) {
    this.hosts = list(config.hostAllowlist).map((h) => h.toLowerCase());
    for (const cidr of list(config.allowAddresses)) {
      const [address, bits] = cidr.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      this.allowed.addSubnet(address, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
    }
  }

  /** A problem with the URL's host that needs no DNS (allowlist, literal addresses), or undefined. */
  hostProblem(url: URL): string | undefined {
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (this.hosts.length > 0 && !this.hosts.some((allowed) => hostMatches(host, allowed))) {
      return `host ${host} is not in IMAGE_HOST_ALLOWLIST (${this.hosts.join(', ')})`;
    }
    if (isIP(host)) return this.addressProblem(host);
    return undefined;
  }

  /** Resolves the URL's host and returns the address to connect to, or throws a SourceError. */
  async vet(url: URL): Promise<VettedAddress> {
    const problem = this.hostProblem(url);
    if (problem) throw new SourceError(`refusing ${url.href}: ${problem}`, { url: url.href });
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let addresses: { address: string; family: number }[];
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (error) {
      throw new SourceError(
        `cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        { url: url.href },
        true,
      );
    }
    for (const { address } of addresses) {
      const bad = this.addressProblem(address);
      if (bad) throw new SourceError(`refusing ${url.href}: ${host} resolves to ${bad}`, { url: url.href });
    }
    return { address: addresses[0].address, family: addresses[0].family as 4 | 6 };
  }

  private addressProblem(address: string): string | undefined {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (this.allowed.check(address, family)) return undefined;
    // Every rule for every family: an IPv4 rule skipped for IPv6 addresses let ::ffff:0.0.0.0
    // (the host itself) and ::ffff:100.100.100.200 through. IPv6 rules never match IPv4.
    for (const [network, bits, fam, what] of FORBIDDEN) {
      const block = new BlockList();
      block.addSubnet(network, bits, fam);
      if (block.check(address, family)) {
        return `${address}, ${what}; image URLs may not reach it unless IMAGE_ALLOW_ADDRESSES allows it`;
      }
    }
    return undefined;
  }
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function hostMatches(host: string, allowed: string): boolean {
  return allowed.startsWith('*.') ? host.endsWith(allowed.slice(1)) : host === allowed;
}
