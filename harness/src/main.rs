fn main() {
    println!("pinhole");
}
