//! include/rprof.h is what cbindgen makes of src/api/control.rs: a fresh generation must
//! match the committed header byte for byte (`RPROF_BLESS=1` rewrites it instead).

use std::path::Path;

#[test]
fn committed_header_is_generated() {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(shim.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(shim.join("src/api/control.rs"))
        .generate()
        .expect("cbindgen cannot read src/api/control.rs")
        .write(&mut fresh);
    let committed_path = shim.join("../include/rprof.h");
    if std::env::var_os("RPROF_BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).expect("cannot write include/rprof.h");
        return;
    }
    let committed = std::fs::read(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/rprof.h differs from a fresh cbindgen generation of shim/src/api/control.rs; \
         regenerate it with `RPROF_BLESS=1 cargo test --release -p rprof-shim --test header`.\n\
         fresh:\n{}",
        String::from_utf8_lossy(&fresh)
    );
}
