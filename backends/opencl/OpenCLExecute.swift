import PolychipCore

extension OpenCLDevice {
    /// Whether `kernel` runs here for activation dtype `dtype`.
    public func supports(_ kernel: OpKind, dtype: DType) -> Support {
        .unsupported("not yet implemented")
    }

    /// Runs one catalog kernel; returns the summed device time of its OpenCL commands.
    public func execute(_ op: Op, inputs: [Tensor], outputs: [Tensor]) throws -> KernelTiming {
        throw PolychipError.unsupported(kernel: op.kind.name, device: id, reason: "not yet implemented")
    }
}
