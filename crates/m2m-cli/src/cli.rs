//! The command line, declared once with clap: commands, flags, `M2M_*` environment variables
//! and the examples every `--help` shows. Completions and the man page are generated from it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use m2m_core::alg::Algorithm;

macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  findings: `decode --lint` or `jwks check` found problems, or `verify` refused the token
  2  usage: bad command line or input (missing option, malformed JWT)
  3  local problem (key file, passphrase, algorithm, URL, config); nothing sent
  4  transport: no usable answer (refused, TLS, timeout, HTML, invalid JSON)
  5  rejected: the token endpoint answered with an OAuth error
  6  HTTP error: `m2m call` got an answer other than 2xx from the API"
    };
}

/// Machine-to-machine OAuth 2.0 with signed JWT client assertions (private_key_jwt),
/// NHS-ready.
#[derive(Debug, Parser)]
#[command(
    name = "m2m",
    version,
    propagate_version = true,
    after_help = concat!(
        "Examples:
  m2m demo                            # the whole flow on this machine
  m2m keygen --kid int-1 --out keys/  # RSA-4096 / RS512 key + public JWKS
  m2m token --env int --client-id KEY --key keys/int-1.pem --kid int-1
  m2m assertion --env int --client-id KEY --key keys/int-1.pem --kid int-1 \\
    | m2m decode --lint nhs --env int -

Settings come from flags, then M2M_* environment variables, then --profile
NAME in ~/.config/m2m/config.toml ($XDG_CONFIG_HOME respected, $M2M_CONFIG
overrides).

", exit_codes!())
)]
pub(crate) struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate a key pair: private key (PKCS#8 PEM, mode 0600) and public JWKS.
    Keygen(KeygenArgs),
    /// Print a signed client assertion (for curl or debugging).
    Assertion(AssertionArgs),
    /// Get an access token and print it.
    Token(TokenArgs),
    /// Decode a JWT: header, claims and human-readable times; --lint says what an endpoint would reject.
    Decode(DecodeArgs),
    /// Ask the authorization server whether a token is active (RFC 7662 introspection).
    Introspect(IntrospectArgs),
    /// Verify an access token as a resource server would: the claims as JSON, or the reason and exit 1.
    Verify(VerifyArgs),
    /// Build or merge a public JWKS from keys, or check a hosted one (`m2m jwks check URL`).
    Jwks(JwksArgs),
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Add, list or remove clients in the server's registry file.
    Clients(ClientsArgs),
    /// Trust a workload issuer (Kubernetes, SPIFFE, GitHub Actions) in the server's registry.
    Trust(crate::commands::trust::TrustArgs),
    /// The whole flow end to end on this machine, with no setup.
    Demo(DemoArgs),
    /// One authenticated request to an API: body on stdout (-i: status and headers on stderr).
    Call(CallArgs),
    /// A local proxy that adds the token to every request, for programs in any language.
    Proxy(ProxyArgs),
    /// A verifying reverse proxy in front of any API: callers need a token.
    Gateway(GatewayArgs),
    /// Manage the token cache of `m2m token`.
    Cache(CacheArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout, or write every page with --all DIR.
    Man(ManArgs),
}

/// `m2m verify`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m verify \"$TOKEN\" --issuer https://auth.example.com \\
    --audience https://api.example.com
  m2m token --profile int | m2m verify --issuer $ISS --audience $AUD
  # no discovery, the issuer's keys from a file:
  m2m verify - --issuer $ISS --audience $AUD --jwks keys.jwks.json
  # a DPoP-bound token with the proof of one request:
  m2m verify \"$TOKEN\" --issuer $ISS --audience $AUD \\
    --dpop-proof \"$PROOF\" --method GET --url https://api.example.com/x

Runs the resource server's check order (m2m-resource): typ at+jwt, iss, kid, signature, exp/nbf/iat,
aud, no cnf (a DPoP-bound token is not a Bearer token), scopes. With --dpop-proof the token is
checked as sent with `Authorization: DPoP` and the proof as RFC 9449 says (htm = --method, htu =
--url, iat window, ath, the proof key = cnf.jkt); the output gains `_dpop: {jkt}`. Exit 1 when the
token or proof is refused, 4 when the issuer's keys cannot be fetched.")]
pub(crate) struct VerifyArgs {
    /// The access token, or `-` (default) to read it from stdin.
    #[arg(default_value = "-", value_name = "TOKEN|-")]
    pub(crate) token: String,
    /// The trusted issuer (exact `iss`); its keys come from RFC 8414 / OIDC discovery unless --jwks.
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: String,
    /// The audience the token must carry (this API's resource identifier).
    #[arg(long, env = "M2M_AUDIENCE", value_name = "URI")]
    pub(crate) audience: String,
    /// A scope the token must have (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub(crate) scopes: Vec<String>,
    /// The issuer's keys: a JWKS (or JWK) file, or a jwks_uri URL (skips discovery).
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,
    /// Also accept typ JWT or no typ (issuers that do not follow RFC 9068). Weakens the check.
    #[arg(long)]
    pub(crate) dangerous_accept_jwt_typ: bool,
    /// The DPoP proof sent with the token (the `DPoP` header): checks it as a DPoP-bound token.
    #[arg(long, value_name = "PROOF", requires_all = ["method", "url"])]
    pub(crate) dpop_proof: Option<String>,
    /// The request's method, for --dpop-proof (htm).
    #[arg(long, value_name = "M", requires = "dpop_proof")]
    pub(crate) method: Option<String>,
    /// The request's URL as the client addressed it, for --dpop-proof (htu).
    #[arg(long, value_name = "U", requires = "dpop_proof")]
    pub(crate) url: Option<String>,
}

/// `m2m keygen`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m keygen --kid int-1 --out keys/   # RSA-4096, RS512: what NHS wants
  m2m keygen --alg ES256 --out keys/   # kid = RFC 7638 thumbprint
  m2m keygen --kid t --bits 2048 --out /tmp/k   # small and quick, for tests
  M2M_KEY_PASSPHRASE=... m2m keygen --kid int-1 --out keys/ --encrypt

Writes DIR/KID.pem (private, 0600) and DIR/KID.jwks.json (public); never
overwrites. --encrypt writes an encrypted PKCS#8 key (PBKDF2-SHA256 and
AES-256-CBC); m2m token reads the passphrase from M2M_KEY_PASSPHRASE or asks.")]
pub(crate) struct KeygenArgs {
    /// Key id; default: the key's RFC 7638 thumbprint.
    #[arg(long, env = "M2M_KID")]
    pub(crate) kid: Option<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long, env = "M2M_OUT", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Algorithm the key is for (decides the key type; written as the JWK `alg`).
    #[arg(long, env = "M2M_ALG", default_value = "RS512", value_parser = parse_alg)]
    pub(crate) alg: Algorithm,
    /// RSA modulus size: 2048, 3072 or 4096.
    #[arg(long, env = "M2M_BITS", default_value_t = 4096, value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"]).map(|s| s.parse::<usize>().unwrap_or(4096)))]
    pub(crate) bits: usize,
    /// Encrypt the private key with a passphrase: from M2M_KEY_PASSPHRASE, else asked for
    /// twice on the terminal.
    #[arg(long)]
    pub(crate) encrypt: bool,
}

/// Settings that say who the client is, which key signs and for which token endpoint.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ClientArgs {
    /// Use defaults from [profiles.NAME] in the config file.
    #[arg(long, env = "M2M_PROFILE", value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Token endpoint URL (https; http only to loopback).
    #[arg(long, env = "M2M_TOKEN_URL", value_name = "URL")]
    pub(crate) token_url: Option<String>,
    /// NHS environment: sets the token URL (and the NHS profile: RS512, aud = token URL).
    #[arg(long, env = "M2M_ENV", value_parser = ["sandbox", "dev", "int", "prod"])]
    pub(crate) env: Option<String>,
    /// Authorization server issuer: aud = issuer, typ = client-authentication+jwt; without a
    /// token URL, `m2m token` finds it by RFC 8414 discovery.
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// Client id (iss = sub); for NHS, the application's API key.
    #[arg(long, env = "M2M_CLIENT_ID", value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// Private key file: PEM (PKCS#1, PKCS#8, SEC1, encrypted PKCS#8), JWK or JWKS.
    /// Encrypted keys: passphrase from M2M_KEY_PASSPHRASE, else a prompt.
    #[arg(long, env = "M2M_KEY", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Key id for the `kid` header (and to choose the key in a JWKS file).
    #[arg(long, env = "M2M_KID")]
    pub(crate) kid: Option<String>,
    /// Signing algorithm; default: the JWK's alg, else RS512 for NHS, else the key type's.
    /// With --auth-method client_secret_jwt: HS256 (default), HS384 or HS512.
    #[arg(long, env = "M2M_ALG", value_parser = parse_any_alg)]
    pub(crate) alg: Option<AlgArg>,
    /// How the client authenticates: private_key_jwt (default with --key), client_secret_basic
    /// (default with a secret), client_secret_post or client_secret_jwt.
    #[arg(long, env = "M2M_AUTH_METHOD", value_name = "METHOD", value_parser = ["private_key_jwt", "client_secret_basic", "client_secret_post", "client_secret_jwt"])]
    pub(crate) auth_method: Option<String>,
    /// File whose first line is the client secret (keep it 0600: a group- or world-readable
    /// file gets a warning).
    #[arg(long, env = "M2M_CLIENT_SECRET_FILE", value_name = "FILE")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Read the client secret from the first line of standard input.
    #[arg(long, conflicts_with = "client_secret_file")]
    pub(crate) client_secret_stdin: bool,
    /// Refused: a secret on the command line is visible to every local user (ps, /proc).
    /// Use --client-secret-file, --client-secret-stdin or M2M_CLIENT_SECRET.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub(crate) client_secret: Option<String>,
    /// Override the assertion's `aud`.
    #[arg(long, env = "M2M_AUD")]
    pub(crate) aud: Option<String>,
    /// Assertion lifetime in seconds (default 60, at most 300).
    #[arg(long, env = "M2M_LIFETIME", value_name = "SECS")]
    pub(crate) lifetime: Option<u64>,
    /// Allow plain http to a non-loopback token URL: the assertion and token travel in clear
    /// text. Closed test networks only.
    #[arg(long, env = "M2M_DANGEROUS_ALLOW_INSECURE_HTTP")]
    pub(crate) dangerous_allow_insecure_http: bool,
    #[command(flatten)]
    pub(crate) federation: FederationArgs,
}

/// The key and secret flags a federated assertion source replaces (clap says so).
const NOT_WITH_ASSERTION: [&str; 3] = ["key", "client_secret_file", "client_secret_stdin"];

/// Federated workload credentials: a JWT the platform issued (Kubernetes, SPIFFE, GitHub
/// Actions) instead of a key or a secret, as the client assertion or, with `--grant
/// jwt-bearer`, as the grant. See docs/federation.md.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct FederationArgs {
    /// A file holding the workload's JWT, re-read for every token request (Kubernetes
    /// projected service-account token, SPIFFE JWT-SVID file).
    #[arg(long, env = "M2M_ASSERTION_FILE", value_name = "FILE",
          conflicts_with_all = NOT_WITH_ASSERTION,
          conflicts_with_all = ["assertion_cmd", "assertion_env", "assertion_github"])]
    pub(crate) assertion_file: Option<PathBuf>,
    /// A command (run by `sh -c` for every token request) whose stdout is the JWT.
    #[arg(long, env = "M2M_ASSERTION_CMD", value_name = "CMD",
          conflicts_with_all = NOT_WITH_ASSERTION,
          conflicts_with_all = ["assertion_env", "assertion_github"])]
    pub(crate) assertion_cmd: Option<String>,
    /// Seconds --assertion-cmd may run before it is killed (default 10).
    #[arg(long, env = "M2M_ASSERTION_TIMEOUT", value_name = "SECS", requires = "assertion_cmd",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub(crate) assertion_timeout: Option<u64>,
    /// An environment variable holding the JWT.
    #[arg(long, env = "M2M_ASSERTION_ENV", value_name = "VAR",
          conflicts_with_all = NOT_WITH_ASSERTION, conflicts_with = "assertion_github")]
    pub(crate) assertion_env: Option<String>,
    /// Ask GitHub Actions for an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN; the job
    /// needs `permissions: id-token: write`).
    #[arg(long, env = "M2M_ASSERTION_GITHUB", conflicts_with_all = NOT_WITH_ASSERTION)]
    pub(crate) assertion_github: bool,
    /// The audience asked of GitHub Actions; default: --aud, else the issuer, else the token URL.
    #[arg(
        long,
        env = "M2M_ASSERTION_AUDIENCE",
        value_name = "AUD",
        requires = "assertion_github"
    )]
    pub(crate) assertion_audience: Option<String>,
    /// The grant: client_credentials (default; the JWT is the client assertion) or jwt-bearer
    /// (the JWT is the grant, RFC 7523 §2.1).
    #[arg(long, env = "M2M_GRANT", value_name = "GRANT",
          value_parser = ["client_credentials", "jwt-bearer"])]
    pub(crate) grant: Option<String>,
}

/// `m2m assertion`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m assertion --env int --client-id KEY --key int-1.pem --kid int-1
  JWT=$(m2m assertion --env int --client-id KEY --key int-1.pem --kid int-1)
  T=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
  curl -s https://int.api.service.nhs.uk/oauth2/token \\
    -d grant_type=client_credentials \\
    -d client_assertion_type=$T -d client_assertion=\"$JWT\"

Prints exactly the JWT and a newline on stdout.")]
pub(crate) struct AssertionArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `m2m token`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m token --env int --client-id KEY --key int-1.pem --kid int-1
  curl -H \"$(m2m token --profile int --header)\" \\
    https://int.api.service.nhs.uk/hello-world/hello/application
  m2m token --issuer http://127.0.0.1:8080 --client-id c --key c.pem --json
  m2m token --profile api --dpop-key dpop.pem --json
  m2m token --token-url $URL --grant jwt-bearer \\
    --assertion-file /var/run/secrets/tokens/m2m

Tokens are cached per token URL + client id + kid + scope (+ assertion source
and grant) in $XDG_CACHE_HOME/m2m (0600), so scripts calling this in a loop
stay under rate limits; --no-cache skips it. A DPoP-bound token is cached only
with --dpop-key (keyed by its thumbprint); with --dpop alone the key dies with
the process. Federated credentials (--assertion-*): see docs/federation.md.")]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// `scope` form parameter.
    #[arg(long, env = "M2M_SCOPE")]
    pub(crate) scope: Option<String>,
    /// Get a token for this API (the MCP flow): find its authorization server from its 401
    /// challenge or RFC 9728 metadata (--issuer pins one), send resource=, cache per resource.
    #[arg(long = "for", value_name = "URL")]
    pub(crate) for_url: Option<String>,
    /// Print the whole token response as JSON.
    #[arg(long, conflicts_with = "header")]
    pub(crate) json: bool,
    /// Print an `Authorization: Bearer …` header line.
    #[arg(long)]
    pub(crate) header: bool,
    /// Do not read or write the token cache.
    #[arg(long, env = "M2M_NO_CACHE")]
    pub(crate) no_cache: bool,
    /// Per-attempt timeout in seconds.
    #[arg(long, env = "M2M_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub(crate) timeout: u64,
    /// Attempts for retryable failures (network, timeout, 5xx, 429), the first included.
    #[arg(long, env = "M2M_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub(crate) attempts: u32,
    #[command(flatten)]
    pub(crate) dpop: DpopArgs,
}

/// DPoP (RFC 9449) for the commands that get tokens to use them (`token`, `call`, `proxy`).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct DpopArgs {
    /// Bind the token to a DPoP key (a P-256 key made for this run unless --dpop-key); API
    /// requests then carry a fresh proof.
    #[arg(long, env = "M2M_DPOP")]
    pub(crate) dpop: bool,
    /// The DPoP key (PEM, PKCS#8, SEC1 or JWK; mode 0600): implies --dpop and lets the token
    /// cache keep DPoP-bound tokens.
    #[arg(long, env = "M2M_DPOP_KEY", value_name = "FILE")]
    pub(crate) dpop_key: Option<PathBuf>,
}

/// The token settings of the commands that call APIs (`call`, `proxy`): the client, scope and
/// token-request limits, as `m2m token` takes them.
#[derive(Debug, Args, Clone)]
pub(crate) struct ApiTokenArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// `scope` form parameter of the token request.
    #[arg(long, env = "M2M_SCOPE")]
    pub(crate) scope: Option<String>,
    /// Per-attempt timeout of a token request, in seconds.
    #[arg(long, env = "M2M_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub(crate) timeout: u64,
    /// Attempts for retryable token-request failures (network, timeout, 5xx, 429).
    #[arg(long, env = "M2M_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub(crate) attempts: u32,
    #[command(flatten)]
    pub(crate) dpop: DpopArgs,
}

/// `m2m call`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m call --profile int \\
    https://int.api.service.nhs.uk/hello-world/hello/application
  m2m call -i POST https://api.example/items --data @item.json
  echo '{}' | m2m call PUT https://api.example/items/1 --data - --profile prod
  m2m call --profile api --dpop-key dpop.pem https://api.example/items

The body goes to stdout; -i adds the status line and headers on stderr. Exit 0 for 2xx, 6 for
any other status (redirects are not followed). A 401 invalid_token drops the cached token and
retries once with a new one. With --dpop the token goes as DPoP with a fresh proof; a
401 use_dpop_nonce is retried once with the API's nonce.")]
pub(crate) struct CallArgs {
    /// The method (GET, POST, …) followed by the URL, or the URL alone (GET; POST with --data).
    #[arg(value_name = "[METHOD] URL", num_args = 1..=2, required = true)]
    pub(crate) target: Vec<String>,
    /// A request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Request body: @FILE, - for stdin, or the text itself.
    #[arg(long, short = 'd', value_name = "@FILE|-|TEXT")]
    pub(crate) data: Option<String>,
    /// Print the status line and response headers on stderr.
    #[arg(short = 'i', long = "include")]
    pub(crate) include: bool,
    /// Do not read or write the token cache.
    #[arg(long, env = "M2M_NO_CACHE")]
    pub(crate) no_cache: bool,
    /// Timeout of the API request in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub(crate) request_timeout: u64,
    #[command(flatten)]
    pub(crate) token: ApiTokenArgs,
}

/// `m2m proxy`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m proxy --profile int --upstream https://int.api.service.nhs.uk \\
    --listen 127.0.0.1:8787
  m2m proxy --profile mcp --upstream https://mcp.example/ \\
    --listen unix:/run/user/1000/mcp.sock --admin-listen 127.0.0.1:9787
  m2m proxy --profile api --dpop --upstream https://api.example \\
    --listen 127.0.0.1:8787

Every request to the listener goes to the upstream with the token added (incoming Authorization
and DPoP removed). Whoever reaches the listener borrows this client's authority: loopback or a
0600 Unix socket only, unless --dangerous-listen-any. With --dpop every request gets a fresh
proof. See docs/proxy.md and docs/dpop.md.")]
pub(crate) struct ProxyArgs {
    /// Where to listen: 127.0.0.1:PORT (loopback) or unix:PATH (created 0600).
    #[arg(long, env = "M2M_PROXY_LISTEN", value_name = "ADDR|unix:PATH")]
    pub(crate) listen: String,
    /// The API every request is forwarded to (its path prefixes the request's path).
    #[arg(long, env = "M2M_PROXY_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: String,
    /// `/healthz` and `/metrics` on this address (loopback unless --dangerous-listen-any).
    #[arg(long, env = "M2M_PROXY_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<String>,
    /// Allow a non-loopback --listen: anyone who reaches it can call the API as this client.
    #[arg(long)]
    pub(crate) dangerous_listen_any: bool,
    #[command(flatten)]
    pub(crate) token: ApiTokenArgs,
}

/// `m2m gateway`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m gateway --listen 0.0.0.0:8443 --upstream http://127.0.0.1:8080 \\
    --issuer https://auth.example.com --audience https://api.example.com
  m2m gateway --listen 127.0.0.1:9000 --upstream http://127.0.0.1:8080 \\
    --issuer $ISS --audience $AUD --require-scope read \\
    --route /admin=admin --public /health --admin-listen 127.0.0.1:9001
  m2m gateway --listen 127.0.0.1:9000 --upstream http://127.0.0.1:8080 \\
    --issuer $ISS --audience $AUD --dpop required \\
    --external-url https://api.example.com --dpop-redis redis://127.0.0.1/

Every request needs a Bearer token from --issuer for --audience (401/403
with an RFC 6750 challenge otherwise), except under --public prefixes.
--dpop allowed also takes DPoP-bound tokens with their proof, --dpop
required only those (RFC 9449; the proofs' htu is --external-url plus the
path, else http://HOST/path; used proofs are kept in memory, or in Redis
shared by several gateways with --dpop-redis). The
upstream gets X-M2M-Client-Id, X-M2M-Sub and X-M2M-Scope from the verified
token (copies sent by the caller are always removed) and no Authorization
unless --keep-authorization. The RFC 9728 document is served at
/.well-known/oauth-protected-resource[/path]. See docs/resource.md.")]
pub(crate) struct GatewayArgs {
    /// Where to listen: HOST:PORT (any address: the gateway authenticates callers) or unix:PATH.
    #[arg(long, env = "M2M_GATEWAY_LISTEN", value_name = "ADDR|unix:PATH")]
    pub(crate) listen: String,
    /// The API requests are forwarded to (its path prefixes the request's path).
    #[arg(long, env = "M2M_GATEWAY_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: String,
    /// The trusted issuer (exact `iss`); its keys come from RFC 8414 / OIDC discovery unless --jwks.
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: String,
    /// The audience tokens must carry: this API's resource identifier (the RFC 9728 `resource`).
    #[arg(long, env = "M2M_AUDIENCE", value_name = "URI")]
    pub(crate) audience: String,
    /// A scope every request's token must have (repeatable).
    #[arg(long = "require-scope", value_name = "S")]
    pub(crate) require_scopes: Vec<String>,
    /// A scope required under a path prefix, in addition (repeatable; the longest prefix wins).
    #[arg(long = "route", value_name = "PREFIX=SCOPE")]
    pub(crate) routes: Vec<String>,
    /// A path prefix served without a token (repeatable; identity headers still removed).
    #[arg(long = "public", value_name = "PREFIX")]
    pub(crate) public: Vec<String>,
    /// Forward the caller's Authorization header to the upstream (removed by default).
    #[arg(long)]
    pub(crate) keep_authorization: bool,
    /// `/healthz` and `/metrics` on this address (keep it off the public network).
    #[arg(long, env = "M2M_GATEWAY_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<String>,
    /// The issuer's keys: a JWKS (or JWK) file, or a jwks_uri URL (skips discovery).
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,
    /// Which tokens are accepted: Bearer only, DPoP-bound ones too, or DPoP-bound ones only.
    #[arg(long, env = "M2M_GATEWAY_DPOP", value_enum, default_value_t = DpopModeArg::Bearer)]
    pub(crate) dpop: DpopModeArg,
    /// The gateway's URL as clients address it, behind a proxy or TLS terminator: DPoP proofs
    /// name it plus the request's path.
    #[arg(long, env = "M2M_GATEWAY_EXTERNAL_URL", value_name = "URL")]
    pub(crate) external_url: Option<String>,
    /// Record used DPoP proofs in this Redis (shared by several gateways) instead of in memory.
    #[arg(long, env = "M2M_GATEWAY_DPOP_REDIS", value_name = "URL")]
    pub(crate) dpop_redis: Option<String>,
}

/// `m2m gateway --dpop`: which tokens are accepted (RFC 9449).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DpopModeArg {
    /// Bearer tokens only (a DPoP-bound token is refused).
    Bearer,
    /// Bearer tokens, and DPoP-bound tokens with their proof.
    Allowed,
    /// DPoP-bound tokens with their proof only.
    Required,
}

/// Linter profiles for `decode --lint`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LintArg {
    /// The NHS England token endpoint's rules and messages.
    Nhs,
    /// RFC 7523 / RFC 10070 (m2m serve's default profile).
    Rfc,
}

/// `m2m decode`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m decode eyJhbGciOi...
  m2m assertion --profile int | m2m decode -
  m2m decode --lint nhs --env int \"$JWT\"   # exit 1 if NHS would refuse it
  m2m decode --lint rfc --issuer https://as.example --json \"$JWT\"

Nothing is verified: decode shows what the token says, not whether to trust
it. --json (with --lint) prints one JSON object on stdout: header, claims,
_times and lint = {profile, ok, findings: [{rule, message}]}.")]
pub(crate) struct DecodeArgs {
    /// The JWT, or `-` (default) to read it from stdin.
    #[arg(default_value = "-", value_name = "JWT|-")]
    pub(crate) jwt: String,
    /// List every rule this token endpoint would refuse the assertion for (on stderr).
    #[arg(long, env = "M2M_LINT")]
    pub(crate) lint: Option<LintArg>,
    /// The token URL the assertion is for (the NHS `aud`).
    #[arg(long, env = "M2M_TOKEN_URL", value_name = "URL")]
    pub(crate) token_url: Option<String>,
    /// NHS environment (sets the token URL).
    #[arg(long, env = "M2M_ENV", value_parser = ["sandbox", "dev", "int", "prod"])]
    pub(crate) env: Option<String>,
    /// Issuer identifier (the rfc profile's `aud`).
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// Use token_url/env/issuer from [profiles.NAME] in the config file.
    #[arg(long, env = "M2M_PROFILE", value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Print the decoded token and the lint findings as one JSON object on stdout.
    #[arg(long, requires = "lint")]
    pub(crate) json: bool,
}

/// `m2m introspect`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  TOKEN=$(m2m token --issuer http://127.0.0.1:8080 --client-id c --key c.pem)
  m2m introspect --issuer http://127.0.0.1:8080 --client-id c --key c.pem \\
    \"$TOKEN\"
  m2m token --profile local | m2m introspect --profile local -

Authenticates as `m2m token` does (a fresh assertion, aud = the issuer) and
prints the server's JSON answer: {\"active\": true, \"scope\", \"client_id\",
\"exp\", ...} or {\"active\": false}. The endpoint comes from
--introspection-url, else from the metadata that --issuer discovers.")]
pub(crate) struct IntrospectArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The token to ask about, or `-` (default) to read it from stdin.
    #[arg(default_value = "-", value_name = "TOKEN|-")]
    pub(crate) token: String,
    /// The introspection endpoint; default: `introspection_endpoint` from the issuer's metadata.
    #[arg(long, env = "M2M_INTROSPECTION_URL", value_name = "URL")]
    pub(crate) introspection_url: Option<String>,
    /// `token_type_hint` form parameter (e.g. access_token).
    #[arg(long, value_name = "HINT")]
    pub(crate) token_type_hint: Option<String>,
    /// Timeout of the request in seconds.
    #[arg(long, env = "M2M_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub(crate) timeout: u64,
}

/// `m2m jwks`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  m2m jwks new.pem old.jwks.json > jwks.json   # rotation: new + old
  m2m jwks --kid int-2 int-2.pub.pem   # kid for a PEM (else its thumbprint)
  m2m jwks check https://example.org/.well-known/jwks.json

Private members (d, p, q, …) in JWK/JWKS inputs are refused; PEM private keys
contribute only their public half. Duplicate kids are an error."
)]
pub(crate) struct JwksArgs {
    #[command(subcommand)]
    pub(crate) command: Option<JwksCommand>,
    /// Public keys (PEM), private keys (PEM; public half used), JWK or JWKS files, in output order.
    #[arg(value_name = "PUBLIC_KEY_OR_JWKS")]
    pub(crate) inputs: Vec<PathBuf>,
    /// kid for PEM inputs, in order (repeat for several); default: RFC 7638 thumbprint.
    #[arg(long)]
    pub(crate) kid: Vec<String>,
    /// `alg` written for PEM inputs; default: RS512 for RSA (NHS), the curve's for EC/Ed25519.
    #[arg(long, value_parser = parse_alg)]
    pub(crate) alg: Option<Algorithm>,
}

/// `m2m jwks check`.
#[derive(Debug, Subcommand)]
pub(crate) enum JwksCommand {
    /// Fetch a hosted JWKS like a token endpoint would and report problems (exit 1 on errors).
    #[command(after_help = "Examples:
  m2m jwks check https://example.org/.well-known/jwks.json
  m2m jwks check --json https://example.org/.well-known/jwks.json

Fetched with a 10 s timeout, no redirects, https only (http to loopback).
--json prints {url, ok, errors, warnings, findings: [{level, message}],
summary}; level is ok, warning or error.")]
    Check {
        /// The JWKS URL.
        url: String,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `m2m serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m clients add --clients clients.toml --id svc --jwks svc.jwks.json
  m2m serve --clients clients.toml --issuer https://auth.example.org
  # offline NHS emulation:
  m2m serve --profile nhs --clients clients.toml --listen 127.0.0.1:9000
  # validate the config and exit (CI, ExecStartPre):
  m2m serve --clients clients.toml --check
  # a new signing key (restart the server afterwards):
  m2m serve --rotate-keys
  # reload clients.toml (a bad file is refused, the old one kept):
  kill -HUP PID

Endpoints: POST {issuer}/oauth2/token, /.well-known/oauth-authorization-server,
/.well-known/jwks.json, POST /oauth2/introspect, /healthz, /readyz,
/metrics.")]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "M2M_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// External base URL (issuer identifier); default http://LISTEN.
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// Client registry (TOML); reloaded on SIGHUP (a file that does not load keeps the old one).
    /// Not needed with --rotate-keys.
    #[arg(
        long,
        env = "M2M_CLIENTS",
        value_name = "FILE",
        required_unless_present = "rotate_keys"
    )]
    pub(crate) clients: Option<PathBuf>,
    /// The client_secret_jwt secrets file (0600); default: secrets.toml beside --clients.
    #[arg(long, env = "M2M_SECRETS", value_name = "FILE")]
    pub(crate) secrets: Option<PathBuf>,
    /// Replay store: sqlite (in --data-dir), sqlite:PATH, memory, redis://HOST:PORT.
    #[arg(long, env = "M2M_REPLAY_STORE", default_value = "sqlite")]
    pub(crate) replay_store: String,
    /// Which token endpoint to behave like.
    #[arg(long, env = "M2M_SERVER_PROFILE", default_value = "rfc", value_parser = ["rfc", "nhs"])]
    pub(crate) profile: String,
    /// Server keys and the SQLite replay file.
    #[arg(
        long,
        env = "M2M_DATA_DIR",
        default_value = "./m2m-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// Token requests per minute per client (0: off).
    #[arg(long, env = "M2M_RATE_LIMIT")]
    pub(crate) rate_limit: Option<u32>,
    /// Access-token lifetime in seconds (1 to 86400, the registry's `token_lifetime` bound).
    // Bounded like the registry: a longer bearer token is a configuration mistake, and a huge
    // value would overflow `iat + lifetime`.
    #[arg(
        long,
        env = "M2M_TOKEN_LIFETIME",
        value_name = "SECS",
        value_parser = clap::value_parser!(u64)
            .range(1..=m2m_server::MAX_TOKEN_LIFETIME.as_secs())
    )]
    pub(crate) token_lifetime: Option<u64>,
    /// Generic error descriptions on the wire (the precise reason is still logged).
    #[arg(long, env = "M2M_OPAQUE_ERRORS")]
    pub(crate) opaque_errors: bool,
    /// Require a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8): stateless,
    /// rotating every 5 minutes, per process; clients retry once with the DPoP-Nonce sent.
    #[arg(long, env = "M2M_DPOP_NONCE")]
    pub(crate) dpop_nonce: bool,
    /// Which assertion `aud` values the rfc profile accepts: `issuer` (the issuer identifier as a
    /// string or one-element array, RFC 10070), `issuer-string` (string only), or
    /// `dangerous-legacy-token-url` (also the token URL, for old clients; reopens audience
    /// injection, see docs/security.md).
    #[arg(
        long,
        env = "M2M_AUDIENCE",
        default_value = "issuer",
        value_parser = ["issuer", "issuer-string", "dangerous-legacy-token-url"]
    )]
    pub(crate) audience: String,
    /// Rotate the access-token signing key in --data-dir (current becomes previous, a new current
    /// is generated; both stay published in the JWKS) and exit. Restart the server afterwards.
    #[arg(long, conflicts_with = "check")]
    pub(crate) rotate_keys: bool,
    /// Load and validate everything (settings, registry, signing keys, replay-store spec), print
    /// a summary and exit without serving or writing anything: for CI and ExecStartPre.
    #[arg(long)]
    pub(crate) check: bool,
}

/// `m2m clients`.
#[derive(Debug, Args)]
pub(crate) struct ClientsArgs {
    #[command(subcommand)]
    pub(crate) command: ClientsCommand,
}

/// `m2m clients` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Register a client (its public keys inline from --jwks, or a --jwks-uri).
    #[command(after_help = "Examples:
  m2m clients add --clients clients.toml --id svc --jwks svc.jwks.json
  m2m clients add --clients clients.toml --id partner \\
    --jwks-uri https://partner.example/jwks.json --alg RS512 --scope read")]
    Add {
        /// Client registry (TOML); created if missing.
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
        /// Client id.
        #[arg(long)]
        id: String,
        /// Public JWKS (or JWK / public PEM) file, written into the registry.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks: Option<PathBuf>,
        /// Hosted JWKS URL.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// Allowed algorithms (comma-separated); default: from the keys.
        #[arg(long, value_delimiter = ',', value_parser = parse_alg)]
        alg: Vec<Algorithm>,
        /// Scopes the client may be granted (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        /// An RFC 8707 resource (API URI) the client may ask tokens for; the token's aud (repeatable).
        #[arg(long, value_name = "URI")]
        resource: Vec<String>,
        /// How it authenticates. The secret methods generate a 256-bit secret, print it once on
        /// stdout and store only its SHA-256 (client_secret_jwt: the secret itself, in the
        /// 0600 secrets file).
        #[arg(long, value_name = "METHOD", default_value = "private_key_jwt", value_parser = ["private_key_jwt", "client_secret_basic", "client_secret_post", "client_secret_jwt"])]
        auth_method: String,
        /// Use this secret (first line of FILE, at least 32 bytes) instead of generating one.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// HMAC algorithms for client_secret_jwt (comma-separated; default HS256).
        #[arg(long, value_delimiter = ',', value_name = "ALG")]
        hmac_alg: Vec<String>,
        /// The client_secret_jwt secrets file; default: secrets.toml beside --clients.
        #[arg(long, env = "M2M_SECRETS", value_name = "FILE")]
        secrets: Option<PathBuf>,
        /// DPoP (RFC 9449): `required` refuses token requests without a proof; `allowed` (the
        /// default when absent) binds a token only when the request carries one.
        #[arg(long, value_name = "POLICY", value_parser = ["required", "allowed"])]
        dpop: Option<String>,
    },
    /// Add a second secret to a secret client (printed once); the old one keeps working until
    /// `retire-secret` or --expires-in.
    #[command(after_help = "Examples:
  m2m clients rotate-secret --clients clients.toml --id reports
  m2m clients rotate-secret --clients clients.toml --id reports \\
    --expires-in 86400")]
    RotateSecret {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
        /// Client id.
        #[arg(long)]
        id: String,
        /// Use this secret (first line of FILE, at least 32 bytes) instead of generating one.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// The old secrets stop working this many seconds from now.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
        /// The client_secret_jwt secrets file; default: secrets.toml beside --clients.
        #[arg(long, env = "M2M_SECRETS", value_name = "FILE")]
        secrets: Option<PathBuf>,
    },
    /// End a rotation: keep only the newest secret of a client.
    #[command(
        after_help = "Examples:\n  m2m clients retire-secret --clients clients.toml --id reports"
    )]
    RetireSecret {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
        /// Client id.
        #[arg(long)]
        id: String,
        /// The client_secret_jwt secrets file; default: secrets.toml beside --clients.
        #[arg(long, env = "M2M_SECRETS", value_name = "FILE")]
        secrets: Option<PathBuf>,
    },
    /// List the registered clients.
    #[command(after_help = "Examples:\n  m2m clients list --clients clients.toml")]
    List {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
    },
    /// Remove a client.
    #[command(
        after_help = "Examples:\n  m2m clients remove --clients clients.toml --id my-service"
    )]
    Remove {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
        /// Client id.
        #[arg(long)]
        id: String,
    },
}

/// Which server `m2m demo` runs the flow against.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DemoProfile {
    /// m2m serve's default: RFC 7523 / RFC 10070, aud = issuer, found by discovery.
    Rfc,
    /// The NHS England emulation: RS512, aud = token URL, "expires_in": "599", NHS's errors.
    Nhs,
}

/// `m2m demo`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m demo
  m2m demo --profile nhs          # the same flow against the NHS emulation
  cargo run --release -- demo

Starts a server on 127.0.0.1 with a temporary directory, creates an RSA-4096
client key, registers it, gets a token, shows the cache and a refused replay;
each step prints the m2m command that does it by hand. Nothing is left behind.")]
pub(crate) struct DemoArgs {
    /// Which server to run the flow against.
    #[arg(long, value_enum, default_value = "rfc")]
    pub(crate) profile: DemoProfile,
    /// RSA key size for the demo client (4096 is what NHS uses).
    #[arg(long, default_value_t = 4096, value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"]).map(|s| s.parse::<usize>().unwrap_or(4096)))]
    pub(crate) bits: usize,
}

/// `m2m cache`.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) command: CacheCommand,
}

/// `m2m cache` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Delete every cached token.
    #[command(after_help = "Examples:\n  m2m cache clear")]
    Clear,
    /// Print where the cache lives.
    #[command(after_help = "Examples:\n  m2m cache path")]
    Path,
}

/// `m2m completions`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m completions bash > ~/.local/share/bash-completion/completions/m2m
  m2m completions zsh > \"${fpath[1]}/_m2m\"
  m2m completions fish > ~/.config/fish/completions/m2m.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: clap_complete::Shell,
}

/// `m2m man`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m man | man -l -
  m2m man --all ~/.local/share/man/man1   # m2m.1, m2m-token.1, ...")]
pub(crate) struct ManArgs {
    /// Write m2m.1 and one page per subcommand (m2m-token.1, m2m-clients-add.1, ...) into DIR.
    #[arg(long, value_name = "DIR")]
    pub(crate) all: Option<PathBuf>,
}

/// An `--alg` value: a signature algorithm (private_key_jwt) or an HMAC one (client_secret_jwt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlgArg {
    /// RS*/PS*/ES*/EdDSA.
    Sig(Algorithm),
    /// HS256/384/512.
    Hmac(m2m_core::hmac::HmacAlg),
}

fn parse_any_alg(s: &str) -> Result<AlgArg, String> {
    if let Some(h) = m2m_core::hmac::HmacAlg::from_name(s) {
        return Ok(AlgArg::Hmac(h));
    }
    parse_alg(s).map(AlgArg::Sig)
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!(
            "unsupported algorithm \"{s}\" (choose one of {})",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every command's (name, written after_help, help rendered for an 80-column terminal).
    fn all_helps() -> Vec<(String, String, String)> {
        fn walk(cmd: &mut clap::Command, name: String, out: &mut Vec<(String, String, String)>) {
            let written = cmd
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            out.push((name.clone(), written, cmd.render_long_help().to_string()));
            for sub in cmd.get_subcommands_mut() {
                let sub_name = format!("{name} {}", sub.get_name());
                walk(sub, sub_name, out);
            }
        }
        let mut cmd = super::Cli::command().term_width(80);
        cmd.build();
        let mut out = Vec::new();
        walk(&mut cmd, "m2m".to_owned(), &mut out);
        out
    }

    /// Examples keep their lines in an 80-column terminal: each line of an `Examples:` block
    /// appears in the rendered help exactly as written (none wrapped mid-command).
    #[test]
    fn help_examples_are_not_wrapped() {
        let mut checked = 0;
        let mut wrapped = Vec::new();
        for (name, written, rendered) in all_helps() {
            let Some(examples) = written.split("Examples:\n").nth(1) else {
                continue;
            };
            let rendered: Vec<&str> = rendered.lines().map(str::trim_end).collect();
            for line in examples.lines().take_while(|l| !l.is_empty()) {
                checked += 1;
                if !rendered.contains(&line.trim_end()) {
                    wrapped.push(format!("`{name} --help`: {line:?}"));
                }
            }
        }
        assert!(
            wrapped.is_empty(),
            "example lines wrapped at 80 columns:\n{}",
            wrapped.join("\n")
        );
        assert!(checked > 20, "only {checked} example lines found");
    }
}
