import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestLogLevel } from './logging';

describe('request log levels', () => {
  it('keeps successful reads at debug and changes at info', () => {
    assert.equal(requestLogLevel('GET', 200), 'debug');
    assert.equal(requestLogLevel('HEAD', 200), 'debug');
    assert.equal(requestLogLevel('POST', 202), 'info');
    assert.equal(requestLogLevel('DELETE', 200), 'info');
  });

  it('raises client errors to warn and server errors to error, whatever the method', () => {
    assert.equal(requestLogLevel('GET', 404), 'warn');
    assert.equal(requestLogLevel('POST', 409), 'warn');
    assert.equal(requestLogLevel('GET', 503), 'error');
  });
});
