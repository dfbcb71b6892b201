import COpenCL
import PolychipCore

/// Tile and work-group parameters of the kernels in kernels/opencl, per device.
///
/// Chosen by vendor class (NVIDIA GPU, CPU device such as PoCL, other) and then clamped
/// to the device's `CL_DEVICE_MAX_WORK_GROUP_SIZE`, work-item sizes and local memory.
public struct OpenCLTuning: Sendable, Hashable {
    /// GEMM tile: `TM×TN` outputs per work-group, `TK`-deep K slabs, `WPTM×WPTN` per work-item.
    public var tm: Int, tn: Int, tk: Int, wptm: Int, wptn: Int
    /// Use the CPU register mapping of the GEMM core (`GEMM_CPU=1`, float8 accumulators).
    public var gemmCPU: Bool
    /// INT4 GEMV: work-group size, output rows per work-group, activation rows per pass.
    public var gvWG: Int, gvRows: Int, gvMaxM: Int
    /// Work-group size of the row kernels (rmsNorm, softmax) and of the MoE router/scan.
    public var rowWG: Int
    /// Pairs per block of the MoE permute kernels.
    public var permuteBlock: Int
    /// Flash attention: query rows and keys per block, rows per work-item, work-items per row.
    public var bq: Int, bk: Int, rq: Int, tc: Int
    /// Lightning indexer: tokens × keys per work-group and per work-item.
    public var it: Int, iS: Int, rt: Int, rs: Int
    /// Top-K: local sort capacity and work-group size.
    public var sortMax: Int, topkWG: Int

    /// Work-items per GEMM work-group.
    var gemmLocal: [Int] { [tn / wptn, tm / wptm] }
    /// Work-items per attention work-group.
    var attentionThreads: Int { (bq / rq) * tc }

    static func make(_ vendor: OpenCLVendorClass, _ limits: OpenCLLimits) -> OpenCLTuning {
        var t: OpenCLTuning
        switch vendor {
        case .nvidia:
            t = OpenCLTuning(tm: 128, tn: 128, tk: 16, wptm: 8, wptn: 8, gemmCPU: false, gvWG: 128, gvRows: 4, gvMaxM: 8,
                             rowWG: 256, permuteBlock: 256, bq: 32, bk: 32, rq: 2, tc: 16,
                             it: 16, iS: 32, rt: 2, rs: 2, sortMax: 2048, topkWG: 256)
        case .cpu:
            // PoCL runs a work-group as loops over work-items: few, fat work-items with
            // vector accumulators; barriers are cheap region splits.
            t = OpenCLTuning(tm: 32, tn: 64, tk: 32, wptm: 4, wptn: 16, gemmCPU: true, gvWG: 32, gvRows: 4, gvMaxM: 8,
                             rowWG: 64, permuteBlock: 256, bq: 16, bk: 32, rq: 4, tc: 8,
                             it: 16, iS: 32, rt: 4, rs: 4, sortMax: 2048, topkWG: 64)
        case .other:
            t = OpenCLTuning(tm: 64, tn: 64, tk: 16, wptm: 4, wptn: 4, gemmCPU: false, gvWG: 64, gvRows: 4, gvMaxM: 8,
                             rowWG: 128, permuteBlock: 128, bq: 32, bk: 32, rq: 2, tc: 8,
                             it: 16, iS: 32, rt: 2, rs: 2, sortMax: 1024, topkWG: 128)
        }
        let maxWG = limits.maxWorkGroupSize
        let item0 = limits.maxWorkItemSizes.first ?? maxWG
        let item1 = limits.maxWorkItemSizes.count > 1 ? limits.maxWorkItemSizes[1] : maxWG
        // GEMM: shrink tiles until the work-group and local memory fit.
        while (t.gemmLocal[0] * t.gemmLocal[1] > maxWG || t.gemmLocal[0] > item0 || t.gemmLocal[1] > item1
               || 4 * t.tk * (t.tm + t.tn + 2) > limits.localMemBytes) && t.tm > 8 {
            t.tm /= 2; t.tn /= 2
            t.wptm = max(1, min(t.wptm, t.tm / 2)); t.wptn = t.gemmCPU ? 8 : max(1, min(t.wptn, t.tn / 2))
            if t.tn < 8 { t.gemmCPU = false }
        }
        func pow2Fit(_ v: Int, _ cap: Int) -> Int { var x = v; while x > cap && x > 1 { x /= 2 }; return x }
        t.rowWG = pow2Fit(t.rowWG, min(maxWG, item0))
        t.permuteBlock = pow2Fit(t.permuteBlock, min(maxWG, item0))
        t.topkWG = pow2Fit(t.topkWG, min(maxWG, item0))
        t.gvWG = pow2Fit(t.gvWG, min(maxWG, item0))
        // The GEMV's final reduction writes one lane per (row, output) with one work-item each.
        while t.gvMaxM * t.gvRows > t.gvWG && t.gvMaxM > 1 { t.gvMaxM /= 2 }
        while t.gvMaxM * t.gvRows > t.gvWG && t.gvRows > 1 { t.gvRows /= 2 }
        while t.attentionThreads > min(maxWG, item0) && t.bq > t.rq { t.bq /= 2 }
        while (t.iS / t.rs) * (t.it / t.rt) > maxWG && t.it > t.rt { t.it /= 2 }
        while 8 * t.sortMax + 4 * (256 + t.topkWG + 8) > limits.localMemBytes && t.sortMax > 64 { t.sortMax /= 2 }
        return t
    }

    /// Local memory of an attention program with these tiles and head dims.
    func attentionLocalBytes(hd: Int, hdv: Int, bq: Int, bk: Int) -> Int {
        4 * (bq * hd + bk * max(hd + 1, hdv) + tc + bq * (bk + 1) + 4 * bq + bk)
    }
}
