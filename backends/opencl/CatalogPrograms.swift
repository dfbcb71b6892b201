import Foundation
import COpenCL
import PolychipCore

/// The kernel source files of kernels/opencl (each is built with common.cl prepended).
enum CLFile: String, CaseIterable {
    case gemm = "gemm.cl", int4 = "int4.cl", elementwise = "elementwise.cl"
    case attention = "attention.cl", dsa = "dsa.cl", moe = "moe.cl"
}

extension DType {
    /// The `DTYPE` build macro of kernels/opencl: 0 f32, 1 f16, 2 bf16.
    var clMacro: Int {
        switch self {
        case .f16: return 1
        case .bf16: return 2
        default: return 0
        }
    }
}

extension OpenCLDevice {
    /// Whether the device divides and takes square roots correctly rounded in f32.
    var correctlyRoundedDivide: Bool {
        let config = CLInfo.value(entry.device, CL_DEVICE_SINGLE_FP_CONFIG, as: cl_device_fp_config.self)
        return config & cl_device_fp_config(CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0
    }

    /// The catalog program `file` for storage dtype `dtype`, with the vendor tiles and
    /// `extra` macros. Built once per process (and once per machine with the disk cache).
    func catalogProgram(_ file: CLFile, dtype: DType, _ extra: [(String, Int)] = []) throws -> OpenCLProgram {
        guard let common = OpenCLKernelSources.files["common.cl"], let body = OpenCLKernelSources.files[file.rawValue] else {
            throw PolychipError.unsupported(kernel: file.rawValue, device: id,
                                            reason: "kernels/opencl/\(file.rawValue) was not embedded in this build")
        }
        let t = tuning
        var macros: [(String, Int)] = [("DTYPE", dtype.clMacro)]
        if file == .gemm || file == .int4 {
            macros += [("TM", t.tm), ("TN", t.tn), ("TK", t.tk), ("WPTM", t.wptm), ("WPTN", t.wptn), ("LPAD", t.lpad),
                       ("GEMM_CPU", t.gemmCPU ? 1 : 0), ("GEMM_PREFETCH", t.gemmPrefetch ? 1 : 0)]
        }
        if file == .int4 { macros += [("GV_WG", t.gvWG), ("GV_ROWS", t.gvRows), ("GV_MAXM", 8), ("GV_VEC", t.gvVec ? 1 : 0), ("GV_WIDE", t.gvWide ? 1 : 0), ("GV_PAIR", t.gvPair)] }
        if file == .elementwise { macros += [("WG", t.rowWG), ("ROW_VEC", t.rowVec ? 1 : 0)] }
        if file == .moe { macros += [("WG", t.rowWG), ("PB", t.permuteBlock)] }
        if file == .dsa { macros += [("IT", t.it), ("IS", t.iS), ("RT", t.rt), ("RS", t.rs), ("IX_CPU", t.ixCPU && t.rs % 8 == 0 ? 1 : 0), ("SORT_MAX", t.sortMax), ("TWG", t.topkWG)] }
        for (k, v) in extra {
            if let i = macros.firstIndex(where: { $0.0 == k }) { macros[i].1 = v } else { macros.append((k, v)) }
        }
        var options = "-cl-std=CL1.2"
        if file == .int4 && correctlyRoundedDivide { options += " -cl-fp32-correctly-rounded-divide-sqrt" }
        options += macros.sorted { $0.0 < $1.0 }.map { " -D\($0.0)=\($0.1)" }.joined()
        // Extra compiler options for tuning runs (part of the cache key like the rest).
        if let extra = ProcessInfo.processInfo.environment["POLYCHIP_OPENCL_OPTIONS"], !extra.isEmpty { options += " " + extra }
        let source = common + "\n#line 1 \"\(file.rawValue)\"\n" + body
        return try buildProgram(name: file.rawValue, source: source, options: options)
    }
}
