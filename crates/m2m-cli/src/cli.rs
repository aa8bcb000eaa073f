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
  1  findings: `decode --lint` or `jwks check` found problems
  2  usage: bad command line or input (missing option, malformed JWT)
  3  local problem: key file, passphrase, algorithm, URL or config file; nothing was sent
  4  transport: no usable answer (connection refused, TLS, timeout, HTML or invalid JSON)
  5  rejected: the token endpoint answered with an OAuth error"
    };
}

/// m2m: machine-to-machine OAuth 2.0 with signed JWT client assertions (private_key_jwt),
/// NHS-ready.
#[derive(Debug, Parser)]
#[command(
    name = "m2m",
    version,
    propagate_version = true,
    after_help = concat!(
        "Examples:
  m2m demo                                   # the whole flow on this machine, in seconds
  m2m keygen --kid int-1 --out keys/          # RSA-4096 / RS512 key + public JWKS
  m2m token --env int --client-id KEY --key keys/int-1.pem --kid int-1
  m2m decode --lint nhs --env int \"$(m2m assertion --env int --client-id KEY --key keys/int-1.pem --kid int-1)\"

Settings come from flags, then M2M_* environment variables, then --profile NAME in
~/.config/m2m/config.toml ($XDG_CONFIG_HOME respected, $M2M_CONFIG overrides).

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
    /// Build or merge a public JWKS from keys, or check a hosted one (`m2m jwks check URL`).
    Jwks(JwksArgs),
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Add, list or remove clients in the server's registry file.
    Clients(ClientsArgs),
    /// The whole flow end to end on this machine, with no setup.
    Demo(DemoArgs),
    /// Manage the token cache of `m2m token`.
    Cache(CacheArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
}

/// `m2m keygen`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m keygen --kid int-1 --out keys/              # RSA-4096, RS512: what NHS wants
  m2m keygen --alg ES256 --out keys/              # kid = RFC 7638 thumbprint
  m2m keygen --kid test --bits 2048 --out /tmp/k  # small and quick, for tests

Writes DIR/KID.pem (private, 0600) and DIR/KID.jwks.json (public). Never overwrites.")]
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
}

/// `m2m assertion`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m assertion --env int --client-id KEY --key int-1.pem --kid int-1
  curl -s https://int.api.service.nhs.uk/oauth2/token \\
    -d grant_type=client_credentials \\
    -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\
    -d client_assertion=\"$(m2m assertion --env int --client-id KEY --key int-1.pem --kid int-1)\"

Prints exactly the JWT and a newline on stdout.")]
pub(crate) struct AssertionArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `m2m token`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m token --env int --client-id KEY --key int-1.pem --kid int-1
  curl -H \"$(m2m token --profile int --header)\" https://int.api.service.nhs.uk/hello-world/hello/application
  m2m token --token-url http://127.0.0.1:8080/oauth2/token --client-id c --key c.pem --json

Tokens are cached per token URL + client id + kid + scope in $XDG_CACHE_HOME/m2m (0600) so
scripts calling this in a loop stay under rate limits; --no-cache skips it.")]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// `scope` form parameter.
    #[arg(long, env = "M2M_SCOPE")]
    pub(crate) scope: Option<String>,
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
  m2m decode --lint nhs --env int \"$JWT\"       # every rule NHS would apply; exit 1 if any fails

Nothing is verified: decode shows what the token says, not whether to trust it.")]
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
}

/// `m2m jwks`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  m2m jwks new.pem old.jwks.json > jwks.json      # rotation: publish new + old
  m2m jwks --kid int-2 int-2.pub.pem              # kid for a PEM input (else its thumbprint)
  m2m jwks check https://example.org/.well-known/jwks.json

Private members (d, p, q, …) in JWK/JWKS inputs are refused; PEM private keys contribute only
their public half. Duplicate kids are an error."
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

Fetched with a 10 s timeout, no redirects, https only (http allowed to loopback).")]
    Check {
        /// The JWKS URL.
        url: String,
    },
}

/// `m2m serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m clients add --clients clients.toml --id my-service --jwks my-service.jwks.json
  m2m serve --clients clients.toml --issuer https://auth.example.org
  m2m serve --profile nhs --clients clients.toml --listen 127.0.0.1:9000   # offline NHS emulation
  m2m serve --clients clients.toml --rotate-keys                            # new signing key, then restart

Endpoints: POST {issuer}/oauth2/token, /.well-known/oauth-authorization-server,
/.well-known/jwks.json, POST /oauth2/introspect, /healthz, /readyz, /metrics.")]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "M2M_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// External base URL (issuer identifier); default http://LISTEN.
    #[arg(long, env = "M2M_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// Client registry (TOML).
    #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
    pub(crate) clients: PathBuf,
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
    #[arg(long)]
    pub(crate) rotate_keys: bool,
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
  m2m clients add --clients clients.toml --id my-service --jwks my-service.jwks.json
  m2m clients add --clients clients.toml --id partner --jwks-uri https://partner.example/jwks.json --alg RS512 --scope read")]
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
    },
    /// Add a second secret to a secret client (printed once); the old one keeps working until
    /// `retire-secret` or --expires-in.
    #[command(after_help = "Examples:
  m2m clients rotate-secret --clients clients.toml --id reports
  m2m clients rotate-secret --clients clients.toml --id reports --expires-in 86400")]
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

/// `m2m demo`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  m2m demo
  cargo run --release -- demo

Starts a server on 127.0.0.1 with a temporary directory, creates an RSA-4096 client key,
registers it, gets a token, shows the cache and a refused replay. Nothing is left behind.")]
pub(crate) struct DemoArgs {
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
}
