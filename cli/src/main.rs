//! The meshctl binary: everything lives in the library (`meshctl::main_entry`).

fn main() -> std::process::ExitCode {
    meshctl::main_entry()
}
