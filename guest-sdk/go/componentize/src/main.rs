//! `tessera-go-component`: the two steps of building a Go (GOOS=wasip1)
//! component that stock Go cannot do itself.
//!
//!   tessera-go-component bindgen WIT_DIR WORLD OUT_DIR
//!       Go bindings for WORLD (wit-bindgen's Go generator, as
//!       `wit-bindgen go -w WORLD`).
//!   tessera-go-component new WIT_DIR WORLD CORE.wasm OUT.wasm
//!       Embeds WORLD's type information into CORE.wasm (a
//!       `-buildmode=c-shared` module) and makes a component of it with the
//!       wasmtime 48 WASI preview1 reactor adapter (as `wasm-tools component
//!       embed` + `wasm-tools component new --adapt`).
//!   tessera-go-component versions
use anyhow::{bail, Context, Result};
use std::path::Path;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

fn load(wit: &str, world: &str) -> Result<(Resolve, wit_parser::WorldId)> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(wit).with_context(|| format!("reading WIT {wit}"))?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    Ok((resolve, world))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bindgen", wit, world, out] => {
            let (mut resolve, world) = load(wit, world)?;
            let opts = wit_bindgen_go::Opts::default();
            let mut files = wit_bindgen_core::Files::default();
            opts.build().generate(&mut resolve, world, &mut files)?;
            for (name, contents) in files.iter() {
                let path = Path::new(out).join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        ["new", wit, world, core, out] => {
            let (resolve, world) = load(wit, world)?;
            let mut module = std::fs::read(core).with_context(|| format!("reading {core}"))?;
            wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8, false)?;
            let component = ComponentEncoder::default()
                .validate(true)
                .module(&module)?
                .adapter(
                    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )?
                .encode()?;
            std::fs::write(out, component).with_context(|| format!("writing {out}"))?;
        }
        ["versions"] => {
            println!("wit-bindgen-go 0.63.0 (runtime {})", wit_bindgen_go::remote_pkg_version());
            println!("wit-component 0.262.0");
            println!("wasi-preview1-component-adapter-provider 48.0.8 (reactor)");
        }
        _ => bail!("usage: tessera-go-component bindgen WIT_DIR WORLD OUT_DIR | new WIT_DIR WORLD CORE.wasm OUT.wasm | versions"),
    }
    Ok(())
}
