/**
 * Checks an image URL at the edge. Returns the reason it is unusable, or undefined.
 * `schemes` are the ones the configured sources serve.
 */
export function imageUrlProblem(value: string, schemes: readonly string[]): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a valid URL';
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) {
    return `uses the unsupported scheme "${scheme}:" (supported: ${schemes.map((s) => `${s}://`).join(', ')})`;
  }
  if (!url.hostname) return 'has no host';
  if (url.username || url.password) return 'must not carry credentials; configure them on the daemon instead';
  return undefined;
}

/**
 * An image URL as it may appear in a log line: no credentials, no query string (presigned URLs
 * carry their signature there), no fragment. Anything unparseable is not echoed at all.
 */
export function urlForLog(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return '<not a URL>';
  }
  url.username = '';
  url.password = '';
  const hadQuery = url.search !== '';
  url.search = '';
  url.hash = '';
  return hadQuery ? `${url.href}?…` : url.href;
}
