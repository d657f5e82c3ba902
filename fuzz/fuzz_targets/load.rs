//! Fuzzes the loader: any bytes must come back as objects or load errors, never a panic,
//! and every object must carry a line inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_core::analysis::{self, MeshConfig};
use mesh_core::source;

fuzz_target!(|data: &[u8]| {
    let loaded = source::load_bytes("fuzz.yaml", data);
    // Line breaks as YAML counts them: LF, CR, and CRLF as one.
    let breaks = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count();
    let lines = 1 + breaks as u32;
    for r in &loaded.resources {
        assert!(r.origin.line <= lines, "line {} beyond {lines}", r.origin.line);
    }
    for e in &loaded.errors {
        assert!(e.line <= lines + 1, "error line {} beyond {lines}", e.line);
    }
    // Everything that loads must also survive every analyzer.
    let mesh = MeshConfig::default();
    let store = analysis::files_store(loaded.resources, &mesh);
    let _ = analysis::run(&store, &mesh, &analysis::all_analyzers());
});
