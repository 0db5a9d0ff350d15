// A real OpenID Connect provider (node-oidc-provider, a certified implementation) for kit's tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json: {"port", "issuer", "users_file", "clients": [...], "api_audience", "id_token_ttl"}.
// The users file maps a login to {password, email, name, groups, roles, siret}; it is read again at each
// use, so a test changes a user's groups at the provider by rewriting it. The signing key is made at each
// start (a new key id): restarting the provider on the same port rotates its keys.
// Sign-in: a plain login form at /interaction/<uid>; consent is given at once (a first-party client).
// Prints "ready <issuer>" on stdout once it listens.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = () => JSON.parse(readFileSync(config.users_file, 'utf8'));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

function profile(login) {
  const u = users()[login];
  if (!u) return undefined;
  return {
    sub: login, email: u.email, email_verified: true, name: u.name || login, preferred_username: login,
    groups: u.groups || [], roles: u.roles || [], siret: u.siret || '',
  };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: [signing] },
  cookies: { keys: [randomUUID()] },
  claims: {
    openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'],
    groups: ['groups'], roles: ['roles'], siret: ['siret'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'roles', 'siret'],
  pkce: { required: () => true },
  ttl: { IdToken: config.id_token_ttl || 3600, AccessToken: 3600, AuthorizationCode: 120, Session: 3600,
         Interaction: 600, Grant: 3600, RefreshToken: 3600 },
  async findAccount(ctx, id) {
    const claims = profile(id);
    if (!claims) return undefined;
    return { accountId: id, async claims() { return profile(id) || { sub: id }; } };
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const p = profile(token.accountId) || {};
    return { email: p.email, groups: p.groups, roles: p.roles, preferred_username: p.preferred_username };
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: 'openid email profile groups roles', audience: resourceIndicator,
        accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

function page(res, uid, message) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Test provider sign-in</title></head><body>
<form method="post" action="/interaction/${esc(uid)}/login">
<p id="message">${esc(message || '')}</p>
<input name="login" id="login" autofocus> <input name="password" id="password" type="password">
<button type="submit" id="submit">Sign in</button></form></body></html>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

async function consent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res) {
  const [, , uid, action] = req.url.split('?')[0].split('/');
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const user = users()[form.login];
    if (!user || user.password !== form.password) return page(res, uid, 'Wrong login or password.');
    return provider.interactionFinished(req, res, { login: { accountId: form.login } },
      { mergeWithLastSubmission: false });
  }
  if (details.prompt.name === 'consent') return consent(req, res, details);
  return page(res, uid, '');
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
    return;
  }
  callback(req, res);
});
server.listen(config.port, '127.0.0.1', () => console.log(`ready ${config.issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
