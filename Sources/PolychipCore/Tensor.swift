/// Device-resident storage. Each backend has its own buffer type.
public protocol DeviceBuffer: AnyObject, Sendable {
    /// Size in bytes.
    var byteCount: Int { get }
    /// The owning device's id.
    var deviceID: String { get }
}

/// A typed view of device storage, or a *meta* tensor (shape and dtype only) for dry runs.
///
/// A tensor may start at a byte offset inside a larger buffer: the conformance suite
/// surrounds outputs with guard regions that way, and every backend honours it.
public struct Tensor: Sendable {
    /// Shape and dtype.
    public var desc: TensorDesc
    /// Storage; `nil` for a meta tensor.
    public var buffer: (any DeviceBuffer)?
    /// Offset of element 0 in `buffer`, in bytes.
    public var byteOffset: Int

    /// A view of `buffer` starting at `byteOffset`. Range checks happen at use.
    public init(desc: TensorDesc, buffer: any DeviceBuffer, byteOffset: Int = 0) {
        self.desc = desc
        self.buffer = buffer
        self.byteOffset = byteOffset
    }

    /// A meta tensor: no storage, usable for modeling and validation only.
    public static func meta(_ desc: TensorDesc) -> Tensor { Tensor(metaDesc: desc) }

    private init(metaDesc: TensorDesc) {
        self.desc = metaDesc
        self.buffer = nil
        self.byteOffset = 0
    }

    /// Whether this tensor has no storage.
    public var isMeta: Bool { buffer == nil }

    /// Shape shortcut.
    public var shape: [Int] { desc.shape }
    /// Dtype shortcut.
    public var dtype: DType { desc.dtype }

    /// The buffer, checked to belong to `device` and to contain the whole view.
    public func requireBuffer(on device: any Device) throws -> any DeviceBuffer {
        guard let buffer else { throw PolychipError.invalidTensor(reason: "\(desc) is a meta tensor (no storage)") }
        guard buffer.deviceID == device.id else {
            throw PolychipError.invalidTensor(reason: "\(desc) lives on \(buffer.deviceID), not \(device.id)")
        }
        let n = try desc.checkedByteCount()
        guard byteOffset >= 0, byteOffset <= buffer.byteCount, n <= buffer.byteCount - byteOffset else {
            throw PolychipError.invalidTensor(reason: "view \(desc) at byte \(byteOffset) exceeds buffer of \(buffer.byteCount) bytes")
        }
        return buffer
    }
}
