import type { PeerCertificate, TLSSocket } from 'node:tls';

/** What a verified client certificate says about who is calling. */
export interface CertIdentity {
  subject: string;
  names: string[];
}

/**
 * The identity of a client certificate that chains to CLIENT_CA_CERT, or undefined when there
 * is none or it does not verify (the TLS layer accepted the connection so token clients can
 * still come in; the certificate alone only counts when `authorized` is true).
 */
export function verifiedClientCert(socket: unknown): CertIdentity | undefined {
  const tls = socket as TLSSocket;
  if (typeof tls.getPeerCertificate !== 'function' || tls.authorized !== true) return undefined;
  const cert: PeerCertificate = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = Array.isArray(cert.subject?.CN) ? cert.subject.CN[0] : cert.subject?.CN;
  const sans = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:') || s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return { subject: cn ? `CN=${cn}` : (sans[0] ?? 'certificate'), names: [...(cn ? [cn] : []), ...sans] };
}
