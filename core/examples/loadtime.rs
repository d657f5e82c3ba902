use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mut texts = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        texts.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    let t = Instant::now();
    let mut n = 0;
    for t in &texts {
        n += mesh_core::yaml::parse_documents(t).len();
    }
    println!("per-doc parse: {n} docs {:?}", t.elapsed());
    let t = Instant::now();
    let mut n = 0;
    for t in &texts {
        n += serde_saphyr::from_multiple::<mesh_core::yaml::Node>(t)
            .unwrap()
            .len();
    }
    println!("whole-stream spanned: {n} docs {:?}", t.elapsed());
    let t = Instant::now();
    let mut n = 0;
    for t in &texts {
        n += serde_saphyr::from_multiple::<serde_json::Value>(t)
            .unwrap()
            .len();
    }
    println!("whole-stream json: {n} docs {:?}", t.elapsed());
    let t = Instant::now();
    let l = mesh_core::source::load_paths(&[dir.into()], true);
    println!("load_paths: {} {:?}", l.resources.len(), t.elapsed());
}
