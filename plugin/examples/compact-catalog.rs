//! Regenerates `data/catalog.tsv` from Microsoft's licensing CSV:
//! `cargo run -p m365-connector --example compact-catalog -- "Product names and service plan identifiers for licensing.csv" > plugin/data/catalog.tsv`

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: compact-catalog <Microsoft licensing CSV>");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(1);
    });
    match m365_connector::catalog::Catalog::from_microsoft_csv(&text) {
        Ok(catalog) => print!("{}", catalog.to_compact()),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
