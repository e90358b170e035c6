import { Injectable } from '@nestjs/common';
import { Settings } from '../config/settings';
import { AddressRules } from './address-rules';

export type { VettedAddress } from './address-rules';

/**
 * The daemon's address rules, made from IMAGE_HOST_ALLOWLIST and IMAGE_ALLOW_ADDRESSES. The rules
 * themselves live in address-rules.ts, which loads no Nest: a download thread checks redirects with them.
 */
@Injectable()
export class AddressPolicy extends AddressRules {
  constructor(settings: Settings) {
    super({ hostAllowlist: settings.images.hostAllowlist, allowAddresses: settings.images.allowAddresses });
  }
}
