// Compiles the CPython frame probe (src/python/rprof_probe.h) and the TLS block into the
// shim, and links the
// shim with -z now so no lazy PLT binding ever runs inside a signal handler.
fn main() {
    println!("cargo:rerun-if-changed=src/python/probe.c");
    println!("cargo:rerun-if-changed=src/sys/tls.c");
    println!("cargo:rerun-if-changed=src/api/execl.c");
    println!("cargo:rerun-if-changed=src/python/rprof_probe.h");
    cc::Build::new()
        .file("src/python/probe.c")
        .file("src/sys/tls.c")
        .file("src/api/execl.c")
        .include("src/python")
        .flag("-ftls-model=initial-exec")
        .flag("-fno-strict-aliasing")
        .flag("-fno-omit-frame-pointer")
        .opt_level(2)
        .compile("rprofprobe");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,now");
}
