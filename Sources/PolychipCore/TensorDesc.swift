/// A tensor's shape and storage dtype: everything but its data.
public struct TensorDesc: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Dimensions, outermost first (row-major).
    public var shape: [Int]
    /// Storage type.
    public var dtype: DType

    /// Creates a descriptor. Sizes are checked lazily by ``checkedByteCount()``.
    public init(_ shape: [Int], _ dtype: DType) {
        self.shape = shape
        self.dtype = dtype
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// Element count, or `nil` when a dimension is negative or the product overflows.
    public var checkedElementCount: Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Element count (0 for an invalid shape; call ``checkedByteCount()`` first where that matters).
    public var elementCount: Int { checkedElementCount ?? 0 }

    /// Storage bytes, or a ``PolychipError/sizeOverflow(shape:dtype:)`` error.
    /// `int4` needs an even element count per row; an odd count rounds up to whole bytes.
    public func checkedByteCount() throws -> Int {
        guard let n = checkedElementCount else { throw PolychipError.sizeOverflow(shape: shape, dtype: dtype) }
        if dtype == .int4 { return n / 2 + n % 2 }
        let (b, o) = n.multipliedReportingOverflow(by: dtype.bitWidth / 8)
        if o { throw PolychipError.sizeOverflow(shape: shape, dtype: dtype) }
        return b
    }

    /// Storage bytes (0 for an invalid shape).
    public var byteCount: Int { (try? checkedByteCount()) ?? 0 }

    /// Shape with the last dimension removed: the number of "rows" for row-wise kernels.
    public var rowCount: Int { shape.dropLast().reduce(1, *) }

    public var description: String { "\(dtype)\(shape)" }
}

/// Shape of a tensor rendered like `[2, 3]` in errors.
@inlinable
func shapeString(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
