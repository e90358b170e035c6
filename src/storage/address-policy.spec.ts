import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Settings } from '../config/settings';
import { AddressPolicy } from './address-policy';

/** The policy as the daemon builds it from IMAGE_HOST_ALLOWLIST and IMAGE_ALLOW_ADDRESSES. */
function policy(env: { hostAllowlist?: string; allowAddresses?: string } = {}): AddressPolicy {
  return new AddressPolicy({ images: { requireChecksum: false, ...env } } as unknown as Settings);
}

// hostProblem is the rule vet() applies to literal hosts before DNS and to every resolved address
// after it; the DNS half is covered by the real-parts specs in test/e2e.
const problem = (url: string, env?: Parameters<typeof policy>[0]) => policy(env).hostProblem(new URL(url));

describe('AddressPolicy: addresses an http(s) image URL may not reach', () => {
  const refused: [string, string, RegExp][] = [
    ['127.0.0.1', 'http://127.0.0.1/disk.img', /127\.0\.0\.1, a loopback address/],
    ['127.255.255.254, the top of 127.0.0.0/8', 'http://127.255.255.254/', /a loopback address/],
    ['127.1, the short form of 127.0.0.1', 'http://127.1/', /127\.0\.0\.1, a loopback address/],
    ['0x7f000001, the hex form of 127.0.0.1', 'http://0x7f000001/', /127\.0\.0\.1, a loopback address/],
    [
      '2130706433, the decimal form of 127.0.0.1',
      'http://2130706433:8080/',
      /127\.0\.0\.1, a loopback address/,
    ],
    [
      '0.0.0.0, which Linux connects to the host itself',
      'http://0.0.0.0/',
      /0\.0\.0\.0, an unspecified address/,
    ],
    ['0.1.2.3 in 0.0.0.0/8', 'http://0.1.2.3/', /an unspecified address/],
    [
      '169.254.169.254, the cloud metadata service',
      'http://169.254.169.254/latest/meta-data/',
      /a link-local address \(169\.254\.169\.254 is the cloud metadata service\)/,
    ],
    ['169.254.0.1, link-local', 'http://169.254.0.1/', /a link-local address/],
    ['100.100.100.200, the Alibaba metadata address', 'http://100.100.100.200/', /a cloud metadata address/],
    ['[::1], IPv6 loopback', 'http://[::1]/', /::1, a loopback address/],
    ['[0:0:0:0:0:0:0:1], IPv6 loopback written out', 'http://[0:0:0:0:0:0:0:1]/', /::1, a loopback address/],
    ['[::], IPv6 unspecified', 'http://[::]/', /an unspecified address/],
    ['[fe80::1], IPv6 link-local', 'http://[fe80::1]/', /fe80::1, a link-local address/],
    ['[febf::1], the top of fe80::/10', 'http://[febf::1]/', /a link-local address/],
    ['[fd00:ec2::254], the AWS IPv6 metadata address', 'http://[fd00:ec2::254]/', /a cloud metadata address/],
    ['[::ffff:127.0.0.1], IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]/', /a loopback address/],
    [
      '[::ffff:169.254.169.254], IPv4-mapped metadata',
      'http://[::ffff:169.254.169.254]/',
      /a link-local address/,
    ],
    ['[::ffff:0.0.0.0], IPv4-mapped unspecified', 'http://[::ffff:0.0.0.0]/', /an unspecified address/],
    [
      '[::ffff:100.100.100.200], IPv4-mapped metadata',
      'http://[::ffff:100.100.100.200]/',
      /a cloud metadata address/,
    ],
    ['[::ffff:7f00:1], IPv4-mapped loopback in hex', 'http://[::ffff:7f00:1]/', /a loopback address/],
    ['an https URL with a port', 'https://127.0.0.1:8443/disk.img', /a loopback address/],
  ];
  for (const [what, url, message] of refused) {
    it(`refuses ${what}, unless IMAGE_ALLOW_ADDRESSES covers it`, () => {
      const found = problem(url);
      assert.ok(found, `${url} was allowed`);
      assert.match(found, message);
      assert.match(found, /image URLs may not reach it unless IMAGE_ALLOW_ADDRESSES allows it/);
    });
  }

  const allowed: [string, string][] = [
    ['a public IPv4 address', 'http://93.184.215.14/disk.img'],
    ['a public IPv6 address', 'http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/'],
    ['a private 10.0.0.0/8 address (an image server on the LAN)', 'http://10.1.2.3/'],
    ['a private 192.168.0.0/16 address', 'http://192.168.1.10/'],
    ['a private 172.16.0.0/12 address', 'http://172.16.0.5/'],
    ['an IPv6 unique local address outside the metadata address', 'http://[fd00::1]/'],
    ['128.0.0.1, just above 127.0.0.0/8', 'http://128.0.0.1/'],
    ['169.255.0.1, just above 169.254.0.0/16', 'http://169.255.0.1/'],
    ['100.100.100.201, next to the metadata address', 'http://100.100.100.201/'],
    ['[fec0::1], just above fe80::/10', 'http://[fec0::1]/'],
    ['a host name (judged after DNS resolution, not here)', 'http://localhost/'],
  ];
  for (const [what, url] of allowed) {
    it(`lets ${what} through`, () => assert.equal(problem(url), undefined));
  }
});

describe('AddressPolicy: IMAGE_ALLOW_ADDRESSES, a comma list of CIDRs', () => {
  const cases: [string, string, string, boolean][] = [
    ['127.0.0.1/32 allows 127.0.0.1', '127.0.0.1/32', 'http://127.0.0.1:9000/', true],
    ['127.0.0.1/32 does not allow 127.0.0.2', '127.0.0.1/32', 'http://127.0.0.2/', false],
    ['a bare address means /32', '127.0.0.1', 'http://127.0.0.1/', true],
    ['a bare address does not widen to its network', '127.0.0.1', 'http://127.0.0.2/', false],
    ['127.0.0.0/8 allows all of loopback', '127.0.0.0/8', 'http://127.9.9.9/', true],
    ['169.254.0.0/16 allows the metadata service', '169.254.0.0/16', 'http://169.254.169.254/', true],
    ['an IPv4 entry allows the IPv4-mapped form too', '127.0.0.1/32', 'http://[::ffff:127.0.0.1]/', true],
    ['::1/128 allows [::1]', '::1/128', 'http://[::1]/', true],
    ['a bare IPv6 address means /128', '::1', 'http://[::1]/', true],
    ['fe80::/10 allows IPv6 link-local', 'fe80::/10', 'http://[fe80::abcd]/', true],
    ['an IPv4 entry does not allow IPv6 loopback', '127.0.0.0/8', 'http://[::1]/', false],
    ['an IPv6 entry does not allow IPv4 loopback', '::1/128', 'http://127.0.0.1/', false],
    [
      'spaces and empty items in the list are ignored',
      ' , 10.0.0.0/8 ,, 127.0.0.1/32 ',
      'http://127.0.0.1/',
      true,
    ],
    ['every item of the list counts', '169.254.169.254/32,::1/128', 'http://[::1]/', true],
  ];
  for (const [what, allowAddresses, url, passes] of cases) {
    it(what, () => {
      const found = problem(url, { allowAddresses });
      if (passes) assert.equal(found, undefined);
      else assert.match(found ?? 'allowed', /may not reach it unless IMAGE_ALLOW_ADDRESSES allows it/);
    });
  }
});

describe('AddressPolicy: IMAGE_HOST_ALLOWLIST, the hosts image URLs may name', () => {
  const cases: [string, string, string, boolean][] = [
    ['an empty list allows any host', '', 'https://anywhere.example/disk.img', true],
    ['a listed host', 'images.example', 'https://images.example/disk.img', true],
    ['host names compare case-insensitively', 'Images.Example', 'https://IMAGES.example/', true],
    ['a host that is not listed', 'images.example', 'https://evil.example/', false],
    ['a listed host as a suffix of another name', 'images.example', 'https://images.example.evil/', false],
    [
      'a subdomain of a listed host (only *. matches subdomains)',
      'images.example',
      'https://a.images.example/',
      false,
    ],
    ['*.example matches a subdomain', '*.example', 'https://images.example/', true],
    ['*.example matches a deeper subdomain', '*.example', 'https://a.b.example/', true],
    ['*.example does not match example itself', '*.example', 'https://example/', false],
    ['*.example does not match notexample', '*.example', 'https://notexample/', false],
    ['any entry of the list', 'a.example, b.example', 'https://b.example/', true],
    ['a literal address listed as a host', '10.0.0.5', 'http://10.0.0.5/', true],
    ['a bracketed IPv6 host compared without brackets', '2001:db8::1', 'http://[2001:db8::1]/', true],
  ];
  for (const [what, hostAllowlist, url, passes] of cases) {
    it(`${passes ? 'allows' : 'refuses'} ${what}`, () => {
      const found = problem(url, { hostAllowlist });
      if (passes) assert.equal(found, undefined);
      else assert.match(found ?? 'allowed', /is not in IMAGE_HOST_ALLOWLIST \(/);
    });
  }

  it('refuses a listed loopback address unless IMAGE_ALLOW_ADDRESSES allows it too', () => {
    assert.match(problem('http://127.0.0.1/', { hostAllowlist: '127.0.0.1' }) ?? '', /a loopback address/);
    assert.equal(
      problem('http://127.0.0.1/', { hostAllowlist: '127.0.0.1', allowAddresses: '127.0.0.1' }),
      undefined,
    );
  });
});
