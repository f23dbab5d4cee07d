import ArgumentParser
extension Coffer { struct Bench: AsyncParsableCommand { static let configuration = CommandConfiguration(abstract: "Benchmarks.") } }
