// The conformance suite's client takes no request headers, and `stratum serve --http` answers 401 to a request
// without its bearer token. A client configured for this server sends the token with every request; this preload
// (NODE_OPTIONS=--require) makes the suite's client do the same. It installs an undici dispatcher that adds
// `Authorization: Bearer <token>` to each request for the server under test, unless the request has one already:
// undici's global dispatcher serves both Node's fetch (the MCP SDK's transport) and undici's `request` (which the
// DNS-rebinding scenario uses to send its own Host and Origin). Nothing else about the requests changes.
'use strict';

const path = require('node:path');

const token = process.env.STRATUM_CONFORMANCE_TOKEN;
const origin = process.env.STRATUM_CONFORMANCE_ORIGIN;
const suite = process.env.STRATUM_CONFORMANCE_MODULES;

function withToken(headers) {
  const value = `Bearer ${token}`;
  if (headers == null) {
    return { authorization: value };
  }
  if (Array.isArray(headers)) {  // flat [name, value, name, value, ...]
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'authorization') return headers;
    }
    return [...headers, 'authorization', value];
  }
  if (Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) {
    return headers;
  }
  return { ...headers, authorization: value };
}

if (token && origin && suite) {
  const undici = require(require.resolve('undici', { paths: [path.join(suite, 'node_modules')] }));
  const agent = new undici.Agent().compose((dispatch) => (options, handler) => {
    const target = String(options.origin ?? '');
    const options2 = target.startsWith(origin) ? { ...options, headers: withToken(options.headers) } : options;
    return dispatch(options2, handler);
  });
  undici.setGlobalDispatcher(agent);
}
