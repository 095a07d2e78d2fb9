//! A plain WASI command: a component of the `wasi:cli/command` world, not a
//! Tessera plugin. The runtime must refuse it at load time.

fn main() {
    println!("hello from a command");
}
