//! The floor for one `get` (docs/PERFORMANCE.md): read a JSON file of N entries, each an
//! armored age ciphertext of a 40-character token, parse it into `serde_json::Value`,
//! find the entry named on stdin, decrypt it with one X25519 identity and print the
//! answer. No bounds, no binding, no slots: what any helper must at least do.
//!
//!   floor make N RECIPIENT > floor.json   entries registry{i}.example.com (untimed)
//!   floor get FILE IDENTITY_FILE < server  the measured call
//!   floor list FILE                        server → username, as `list` prints it
use std::io::{Read, Write};
use std::str::FromStr;

fn token(i: usize) -> String {
    format!("ghp_{i:036}")
}

fn make(n: usize, recipient: &str) {
    let recipient = age::x25519::Recipient::from_str(recipient).expect("an age1… recipient");
    let mut entries = serde_json::Map::new();
    for i in 0..n {
        let mut armored = Vec::new();
        let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient as _))
            .expect("encryptor");
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
                .expect("armor");
        let mut w = encryptor.wrap_output(armor).expect("wrap");
        w.write_all(token(i).as_bytes()).expect("write");
        w.finish().and_then(|a| a.finish()).expect("finish");
        entries.insert(
            format!("registry{i}.example.com"),
            serde_json::json!({"username": format!("user{i}"), "secret": String::from_utf8(armored).unwrap()}),
        );
    }
    let doc = serde_json::json!({ "entries": entries });
    serde_json::to_writer(std::io::stdout().lock(), &doc).expect("write");
}

fn get(file: &str, identity_file: &str) {
    let mut server = String::new();
    std::io::stdin().read_to_string(&mut server).expect("stdin");
    let server = server.trim();
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
    let Some(entry) = doc["entries"].get(server) else {
        println!("credentials not found in native keychain");
        std::process::exit(1);
    };
    let text = std::fs::read_to_string(identity_file).expect("identity file");
    let line = text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).expect("identity");
    let identity = age::x25519::Identity::from_str(line).expect("identity");
    let armored = entry["secret"].as_str().expect("secret").as_bytes();
    let decryptor =
        age::Decryptor::new(age::armor::ArmoredReader::new(armored)).expect("age file");
    let mut secret = String::new();
    decryptor
        .decrypt(std::iter::once(&identity as _))
        .expect("decrypt")
        .read_to_string(&mut secret)
        .expect("plaintext");
    let answer = serde_json::json!({
        "ServerURL": server, "Username": entry["username"], "Secret": secret,
    });
    println!("{answer}");
}

fn list(file: &str) {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
    let mut out = serde_json::Map::new();
    for (server, entry) in doc["entries"].as_object().expect("entries") {
        out.insert(server.clone(), entry["username"].clone());
    }
    println!("{}", serde_json::Value::Object(out));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("make") => make(args[2].parse().expect("N"), &args[3]),
        Some("get") => get(&args[2], &args[3]),
        Some("list") => list(&args[2]),
        _ => {
            eprintln!("usage: floor make N RECIPIENT | get FILE IDENTITY_FILE | list FILE");
            std::process::exit(2);
        }
    }
}
