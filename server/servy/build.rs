//! Build time only: walk the site, and for every file compute what the request path
//! would otherwise compute per request.
//!
//! For each file: a strong ETag (sha256 of the bytes), the Content-Type, the cache class,
//! a Last-Modified when the file's mtime means something, and brotli/zstd/gzip variants
//! kept only when they are meaningfully smaller. Variants are written under
//! `$OUT_DIR/variants/`; rust-embed embeds them and the originals (`src/site/mod.rs`),
//! and `$OUT_DIR/assets.rs` is the table that ties a path to its representations.
//!
//! The site is `SERVY_ASSETS_DIR` (an absolute path) or, when unset, `../demo-site`.
//! Cargo is told to rerun on the variable and on every file and directory of the site:
//! the predecessor served a stale embed after an edit, silently.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;
use std::{env, fs, thread};

use sha2::{Digest, Sha256};

/// The site's rule files: read here, never embedded as pages.
const RULE_FILES: [&str; 2] = ["_headers", "_redirects"];

/// A variant is kept only if it saves at least this share of the original (1/20 = 5%)...
const MIN_SAVING_DIVISOR: usize = 20;
/// ...and at least this many bytes: below that, the `Vary` and a second cache entry cost more.
const MIN_SAVING_BYTES: usize = 64;

/// Mtimes at or before 1980-01-01 are placeholders (the Nix store sets every file to 1,
/// zip and some build tools use 1980), not when the content changed: send no Last-Modified.
const MEANINGFUL_MTIME: u64 = 315_532_800;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The tests run this very script on broken sites (tests/it/headers.rs).
    if let Ok(me) = env::current_exe() {
        println!("cargo:rustc-env=SERVY_BUILD_SCRIPT={}", me.display());
    }
    println!("cargo:rerun-if-env-changed=SERVY_ASSETS_DIR");
    let site = site_dir();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let variants = out.join("variants");
    // Start clean so a file removed from the site leaves no variant behind.
    if variants.exists() {
        fs::remove_dir_all(&variants)
            .unwrap_or_else(|e| fail(&format!("cannot clear {}: {e}", variants.display())));
    }
    fs::create_dir_all(&variants)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", variants.display())));

    let site_str = site
        .to_str()
        .unwrap_or_else(|| fail(&format!("site path {} is not UTF-8", site.display())));
    println!("cargo:rustc-env=SERVY_SITE_DIR={site_str}");

    let mut files = Vec::new();
    walk(&site, "", &mut files);
    files.sort();

    let header_rules = servy_rules::headers::parse(&read_rule_file(&site, "_headers"))
        .unwrap_or_else(|e| fail(&format!("_headers:{e}")));
    let redirect_rules = servy_rules::redirects::parse(&read_rule_file(&site, "_redirects"))
        .unwrap_or_else(|e| fail(&format!("_redirects:{e}")));
    check_rewrites(&redirect_rules, &files);

    let mut entries = process_all(&variants, &files);
    for entry in &mut entries {
        entry.headers = servy_rules::headers::combine(
            &header_rules,
            &servy_rules::pattern::request_keys(&entry.key),
        )
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    }
    let table = render(&entries);
    let dest = out.join("assets.rs");
    fs::write(&dest, table)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dest.display())));
    let rules = render_rules(&header_rules, &redirect_rules);
    let dest = out.join("site_rules.rs");
    fs::write(&dest, rules)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dest.display())));
}

/// A rule file's text, or nothing when the site has none.
fn read_rule_file(site: &Path, name: &str) -> String {
    let path = site.join(name);
    println!("cargo:rerun-if-changed={}", path.display());
    match fs::read(&path) {
        Ok(bytes) => {
            String::from_utf8(bytes).unwrap_or_else(|e| fail(&format!("{name}: not UTF-8: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => fail(&format!("cannot read {}: {e}", path.display())),
    }
}

/// A rewrite without placeholders names one file; it must be one the site has.
fn check_rewrites(rules: &[servy_rules::redirects::Rule], files: &[(String, PathBuf)]) {
    for rule in rules.iter().filter(|r| r.status == 200) {
        if rule.to.contains(':') {
            continue; // resolved per request; a miss is a 404
        }
        let target = rule.to.trim_start_matches('/');
        let exists = files.iter().any(|(key, _)| {
            servy_rules::pattern::request_keys(key)
                .iter()
                .any(|k| k.trim_end_matches('/') == target.trim_end_matches('/'))
        });
        if !exists {
            fail(&format!(
                "_redirects:{}: {:?} is not a file of the site, so a 200 rewrite cannot serve it",
                rule.line, rule.to
            ));
        }
    }
}

/// `$OUT_DIR/site_rules.rs`: the headers of `_headers` rules that match every path (for
/// responses that are not a file: redirects, 404s) and the `_redirects` rules in order.
fn render_rules(
    headers: &[servy_rules::headers::Rule],
    redirects: &[servy_rules::redirects::Rule],
) -> String {
    let mut s = String::from(
        "// Generated by build.rs from _headers and _redirects. Do not edit.\n\npub static EVERY_PATH_HEADERS: &[(&str, &str)] = &[\n",
    );
    let everywhere: Vec<servy_rules::headers::Rule> = headers
        .iter()
        .filter(|r| r.pattern.matches_everything())
        .cloned()
        .collect();
    for (name, value) in servy_rules::headers::combine(&everywhere, &[""]) {
        let _ = writeln!(s, "    ({name:?}, {value:?}),");
    }
    s.push_str("];\n\npub static REDIRECT_RULES: &[RuleEntry] = &[\n");
    for r in redirects {
        let _ = writeln!(
            s,
            "    RuleEntry {{ line: {}, from: {:?}, to: {:?}, status: {}, force: {} }},",
            r.line, r.from_text, r.to, r.status, r.force
        );
    }
    s.push_str("];\n");
    s
}

/// The site directory: `SERVY_ASSETS_DIR` if set (absolute, a directory), else the demo site.
fn site_dir() -> PathBuf {
    let dir = match env::var_os("SERVY_ASSETS_DIR") {
        Some(raw) => {
            let dir = PathBuf::from(&raw);
            if !dir.is_absolute() {
                fail(&format!(
                    "SERVY_ASSETS_DIR must be an absolute path, got {:?}",
                    raw
                ));
            }
            if !dir.is_dir() {
                fail(&format!(
                    "SERVY_ASSETS_DIR={} is not a directory",
                    dir.display()
                ));
            }
            dir
        }
        None => {
            PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
                .join("../demo-site")
        }
    };
    dir.canonicalize().unwrap_or_else(|e| {
        fail(&format!(
            "cannot resolve site directory {}: {e}",
            dir.display()
        ))
    })
}

/// Collects `(key, absolute path)` for every regular file under `dir`, following symlinks
/// (as rust-embed does), and registers every directory and file with cargo.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    // A directory's mtime changes when an entry is added, removed or renamed.
    println!("cargo:rerun-if-changed={}", dir.display());
    let listing =
        fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
    for entry in listing {
        let entry = entry.unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            println!(
                "cargo:warning=skipping {}: the name is not UTF-8, so no URL can name it",
                path.display()
            );
            continue;
        };
        if name.contains('\\') || name.chars().any(char::is_control) {
            println!(
                "cargo:warning=skipping {}: a backslash or control character in the name is never served",
                path.display()
            );
            continue;
        }
        if prefix.is_empty() && RULE_FILES.contains(&name.as_str()) {
            continue; // read by `read_rule_file`, never served
        }
        let key = format!("{prefix}{name}");
        let meta = fs::metadata(&path)
            .unwrap_or_else(|e| fail(&format!("cannot stat {}: {e}", path.display())));
        if meta.is_dir() {
            walk(&path, &format!("{key}/"), files);
        } else if meta.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push((key, path));
        }
    }
}

#[derive(Clone, Copy)]
enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    fn extension(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zst",
            Coding::Gzip => "gz",
        }
    }

    fn variant_name(self) -> &'static str {
        match self {
            Coding::Br => "Br",
            Coding::Zstd => "Zstd",
            Coding::Gzip => "Gzip",
        }
    }

    fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Coding::Br => {
                let params = brotli::enc::backward_references::BrotliEncoderParams {
                    quality: 11,
                    lgwin: 22,
                    size_hint: data.len(),
                    ..Default::default()
                };
                let mut out = Vec::new();
                brotli::enc::BrotliCompress(&mut &data[..], &mut out, &params)
                    .unwrap_or_else(|e| fail(&format!("brotli: {e}")));
                out
            }
            Coding::Zstd => {
                zstd::bulk::compress(data, 19).unwrap_or_else(|e| fail(&format!("zstd: {e}")))
            }
            Coding::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(data)
                    .and_then(|_| enc.finish())
                    .unwrap_or_else(|e| fail(&format!("gzip: {e}")))
            }
        }
    }
}

struct Variant {
    coding: Coding,
    file: String,
    etag: String,
    len: usize,
}

struct Entry {
    key: String,
    content_type: String,
    class: &'static str,
    last_modified: Option<(u64, String)>,
    etag: String,
    len: usize,
    variants: Vec<Variant>,
    /// From `_headers`: `(lower-case name, combined value)`.
    headers: Vec<(String, String)>,
}

/// Processes files on every core: compression at brotli q11 dominates the build time.
fn process_all(variants_dir: &Path, files: &[(String, PathBuf)]) -> Vec<Entry> {
    let next = Mutex::new(0usize);
    let done: Mutex<Vec<Option<Entry>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut next = next
                            .lock()
                            .expect("no worker panics while holding the lock");
                        let i = *next;
                        *next += 1;
                        i
                    };
                    let Some((key, path)) = files.get(i) else {
                        break;
                    };
                    let entry = process(variants_dir, key, path);
                    done.lock()
                        .expect("no worker panics while holding the lock")[i] = Some(entry);
                }
            });
        }
    });
    done.into_inner()
        .expect("workers finished")
        .into_iter()
        .map(|e| e.expect("every file processed"))
        .collect()
}

fn process(variants_dir: &Path, key: &str, path: &Path) -> Entry {
    let data =
        fs::read(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    let mime = mime_guess::from_path(key).first_or_octet_stream();
    let content_type = content_type(&mime);
    let mtime = fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let last_modified = mtime
        .filter(|&t| t > MEANINGFUL_MTIME)
        .map(|t| (t, http_date(t)));

    let mut variants = Vec::new();
    if compressible(&mime) && data.len() > MIN_SAVING_BYTES {
        for coding in Coding::ALL {
            let packed = coding.compress(&data);
            let saved = data.len().saturating_sub(packed.len());
            if saved < MIN_SAVING_BYTES || saved < data.len() / MIN_SAVING_DIVISOR {
                continue;
            }
            let file = format!("{key}.{}", coding.extension());
            let dest = variants_dir.join(&file);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)
                    .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", parent.display())));
            }
            fs::write(&dest, &packed)
                .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dest.display())));
            // Each variant's ETag is the hash of its own bytes: a strong validator names
            // exactly one byte sequence, which is what ranges over it rely on.
            variants.push(Variant {
                coding,
                file,
                etag: etag(&packed),
                len: packed.len(),
            });
        }
    }
    Entry {
        key: key.to_owned(),
        content_type,
        class: cache_class(key),
        last_modified,
        etag: etag(&data),
        len: data.len(),
        variants,
        headers: Vec::new(),
    }
}

/// Quoted, strong: the first 16 bytes of the sha256, base64url without padding (22 chars).
fn etag(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(data);
    let mut out = String::from("\"");
    let mut bits = 0u32;
    let mut nbits = 0;
    for &b in &digest[..16] {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 63) as usize]));
        }
    }
    if nbits > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - nbits)) & 63) as usize]));
    }
    out.push('"');
    out
}

fn content_type(mime: &mime_guess::Mime) -> String {
    let essence = mime.essence_str();
    let textual = mime.type_() == "text"
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "image/svg+xml"
                | "application/rss+xml"
                | "application/atom+xml"
        );
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

/// Formats that are already compressed gain nothing from another pass.
fn compressible(mime: &mime_guess::Mime) -> bool {
    let essence = mime.essence_str();
    match mime.type_().as_str() {
        "image" => {
            essence == "image/svg+xml" || essence == "image/x-icon" || essence == "image/bmp"
        }
        "video" | "audio" => false,
        "font" => matches!(essence, "font/ttf" | "font/otf"),
        _ => !matches!(
            essence,
            "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/x-bzip2"
                | "application/x-xz"
                | "application/zstd"
                | "application/x-7z-compressed"
                | "application/vnd.rar"
                | "application/x-rar-compressed"
                | "application/pdf"
                | "application/octet-stream"
                | "application/font-woff"
                | "application/font-woff2"
        ),
    }
}

/// `html` revalidates; `immutable` for fingerprinted names (`app.3f2a9c1e.css`: a dot,
/// 8 or more hex digits, a dot, an extension); `default` for the rest.
fn cache_class(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    if name.ends_with(".html") || name.ends_with(".htm") {
        return "Html";
    }
    let parts: Vec<&str> = name.split('.').collect();
    let fingerprinted = parts.len() >= 3
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if fingerprinted {
        "Immutable"
    } else {
        "Default"
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), shifted so the year starts in March.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Percent-encodes a key into the request target that names it (for `--list-assets`).
fn url(key: &str) -> String {
    let mut out = String::from("/");
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn render(entries: &[Entry]) -> String {
    let mut s = String::from(
        "// Generated by build.rs from the site directory. Do not edit.\n\npub static ENTRIES: &[Entry] = &[\n",
    );
    for e in entries {
        let last_modified = match &e.last_modified {
            Some((secs, text)) => format!("Some(LastModified {{ secs: {secs}, text: {text:?} }})"),
            None => "None".to_owned(),
        };
        let _ = writeln!(
            s,
            "    Entry {{ key: {:?}, url: {:?}, content_type: {:?}, class: CacheClass::{}, last_modified: {last_modified}, \
             identity: Rep {{ etag: {:?}, len: {}, len_text: \"{}\" }}, variants: &[",
            e.key,
            url(&e.key),
            e.content_type,
            e.class,
            e.etag,
            e.len,
            e.len
        );
        for v in &e.variants {
            let _ = writeln!(
                s,
                "        VariantEntry {{ coding: Coding::{}, file: {:?}, rep: Rep {{ etag: {:?}, len: {}, len_text: \"{}\" }} }},",
                v.coding.variant_name(),
                v.file,
                v.etag,
                v.len,
                v.len
            );
        }
        s.push_str("    ], headers: &[");
        for (name, value) in &e.headers {
            let _ = write!(s, "({name:?}, {value:?}), ");
        }
        s.push_str("] },\n");
    }
    s.push_str("];\n");
    s
}

fn fail(msg: &str) -> ! {
    eprintln!("servy build: {msg}");
    panic!("servy build: {msg}");
}
