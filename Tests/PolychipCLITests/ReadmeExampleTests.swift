import Testing
import Polychip

/// The README's library example, kept compiling and true.
@Suite struct ReadmeExampleTests {
    @Test func libraryExample() throws {
        let device = try Polychip.device("reference")
        let a = try HostTensor([2, 3], .f32, floats: [1, 2, 3, 4, 5, 6])
        let b = try HostTensor([3, 2], .f32, floats: [1, 0, 0, 1, 1, 1])
        let c = try device.run(.matmul(transposeB: false), [a, b])[0]
        #expect(c.floats == [4, 5, 10, 11])
        let q = try device.tensor(a), k = try device.tensor(b)
        let out = try device.allocate(TensorDesc([2, 2], .f32))
        let queue = Queue(device: device)
        let record = try queue.enqueue(.matmul(transposeB: false), inputs: [q, k], outputs: [out])
        #expect(record.kernel == "matmul" && record.flops == 24)
        #expect(throws: PolychipError.self) { try device.run(.matmul(transposeB: false), [a, a]) }
    }
}
