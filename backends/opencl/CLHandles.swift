import COpenCL
import PolychipCore

// Every OpenCL object is owned by exactly one final class that releases it exactly once
// in deinit. The classes are @unchecked Sendable: the OpenCL API is thread-safe for
// these objects (OpenCL 1.2 §A.2), except clSetKernelArg, which OpenCLDevice serializes
// with its launch lock.

/// Owns a `cl_context`.
final class CLContext: @unchecked Sendable {
    let raw: cl_context
    init(_ raw: cl_context) { self.raw = raw }
    deinit { clReleaseContext(raw) }
}

/// Owns a `cl_command_queue`.
final class CLCommandQueue: @unchecked Sendable {
    let raw: cl_command_queue
    init(_ raw: cl_command_queue) { self.raw = raw }
    deinit { clReleaseCommandQueue(raw) }
}

/// Owns a `cl_mem`.
final class CLMem: @unchecked Sendable {
    let raw: cl_mem
    init(_ raw: cl_mem) { self.raw = raw }
    deinit { clReleaseMemObject(raw) }
}

/// Owns a `cl_program`.
final class CLProgram: @unchecked Sendable {
    let raw: cl_program
    init(_ raw: cl_program) { self.raw = raw }
    deinit { clReleaseProgram(raw) }
}

/// Owns a `cl_kernel`.
final class CLKernel: @unchecked Sendable {
    let raw: cl_kernel
    init(_ raw: cl_kernel) { self.raw = raw }
    deinit { clReleaseKernel(raw) }
}

/// Owns a `cl_event`.
final class CLEvent: @unchecked Sendable {
    let raw: cl_event
    init(_ raw: cl_event) { self.raw = raw }
    deinit { clReleaseEvent(raw) }

    /// Device time between the command's start and end, in seconds (profiling queue).
    func profiledSeconds() throws -> Double {
        var start: cl_ulong = 0, end: cl_ulong = 0
        try CLStatus.check(clGetEventProfilingInfo(raw, cl_profiling_info(CL_PROFILING_COMMAND_START),
                                                   MemoryLayout<cl_ulong>.size, &start, nil), "clGetEventProfilingInfo")
        try CLStatus.check(clGetEventProfilingInfo(raw, cl_profiling_info(CL_PROFILING_COMMAND_END),
                                                   MemoryLayout<cl_ulong>.size, &end, nil), "clGetEventProfilingInfo")
        return end >= start ? Double(end - start) * 1e-9 : 0
    }
}

/// Typed `clGet*Info` queries.
enum CLInfo {
    /// A string-valued device property ("" when the query fails).
    static func string(_ device: cl_device_id, _ param: Int32) -> String {
        var size = 0
        guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil) == CL_SUCCESS else { return "" }
        return trimmed(bytes)
    }

    /// A string-valued platform property ("" when the query fails).
    static func string(platform: cl_platform_id, _ param: Int32) -> String {
        var size = 0
        guard clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil) == CL_SUCCESS else { return "" }
        return trimmed(bytes)
    }

    /// A scalar device property (`zero` when the query fails).
    static func value<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32, as: T.Type) -> T {
        var v: T = 0
        guard clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &v, nil) == CL_SUCCESS else { return 0 }
        return v
    }

    /// A `size_t[]` device property.
    static func sizes(_ device: cl_device_id, _ param: Int32) -> [Int] {
        var size = 0
        guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return [] }
        var v = [Int](repeating: 0, count: size / MemoryLayout<Int>.size)
        guard clGetDeviceInfo(device, cl_device_info(param), size, &v, nil) == CL_SUCCESS else { return [] }
        return v
    }

    private static func trimmed(_ bytes: [CChar]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let s = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

import Foundation
