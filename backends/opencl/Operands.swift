import PolychipCore

/// A tensor as a kernel sees it: its buffer and the element offset of element 0.
final class Operand {
    let buffer: OpenCLBuffer
    /// Offset in elements of the tensor's dtype (bytes for int4 / i8).
    let offset: UInt64
    let desc: TensorDesc

    init(buffer: OpenCLBuffer, offset: UInt64, desc: TensorDesc) {
        self.buffer = buffer; self.offset = offset; self.desc = desc
    }

    /// The two kernel arguments `T *p, ulong p_off`.
    var args: [KernelArg] { [.buffer(buffer), .u64(offset)] }
}

extension OpenCLDevice {
    /// The operand of a tensor of this device; its byte offset must be a multiple of the
    /// element size (kernels index with element offsets).
    func operand(_ t: Tensor) throws -> Operand {
        let b = try clBuffer(try t.requireBuffer(on: self))
        let size = max(t.dtype.bitWidth / 8, 1)
        guard t.byteOffset % size == 0 else {
            throw PolychipError.invalidTensor(reason: "\(t.desc) at byte offset \(t.byteOffset) is not aligned to its \(size)-byte elements")
        }
        return Operand(buffer: b, offset: UInt64(t.byteOffset / size), desc: t.desc)
    }

    /// Reads a (small) i32 tensor back for host-side validation.
    func readInt32s(_ t: Tensor) throws -> [Int] {
        let n = t.desc.elementCount
        var v = [Int32](repeating: 0, count: n)
        try v.withUnsafeMutableBytes { try read(from: try t.requireBuffer(on: self), at: t.byteOffset, into: $0) }
        return v.map { Int(Int32(littleEndian: $0)) }
    }

    /// Reads an i8 tensor back for host-side validation.
    func readInt8s(_ t: Tensor) throws -> [Int] {
        var v = [Int8](repeating: 0, count: t.desc.elementCount)
        try v.withUnsafeMutableBytes { try read(from: try t.requireBuffer(on: self), at: t.byteOffset, into: $0) }
        return v.map(Int.init)
    }
}
