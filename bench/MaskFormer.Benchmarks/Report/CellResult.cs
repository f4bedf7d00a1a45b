namespace MaskFormer.Benchmarks.Report;

/// <summary>One measured cell of one round: a load on one model, and what it cost.</summary>
internal sealed record CellResult
{
    public required string Model { get; init; }

    /// <summary>raw-ort (laid out as the service), raw-ort-per-core, unary, stream, or size-512 / size-1080 (unary at concurrency 1 on that image).</summary>
    public required string Scenario { get; init; }

    /// <summary>"all" (semantic + instance + panoptic) or "semantic".</summary>
    public required string Tasks { get; init; }

    /// <summary>Concurrent callers, frames in flight, or the raw batch size.</summary>
    public required int Concurrency { get; init; }

    public required int Round { get; init; }

    public required int Images { get; init; }

    public required double Seconds { get; init; }

    public double ImagesPerSecond => Images / Seconds;

    /// <summary>The whole cell's time, warm-up and ending included (for the report's own duration).</summary>
    public double WallSeconds { get; init; }

    /// <summary>CPU time of the process doing the work (server, or the raw ORT loop) per image.</summary>
    public required double CpuMsPerImage { get; init; }

    public double LatencyP50Ms { get; init; }

    public double LatencyP95Ms { get; init; }

    /// <summary>Median model run per image (the batch's run divided by its size).</summary>
    public double InferenceMsPerImage { get; init; }

    public double PostprocessMs { get; init; }

    public double EncodeMs { get; init; }

    public double MeanBatch { get; init; }

    public int Errors { get; init; }

    /// <summary>The first failure's status and detail (not in the CSV).</summary>
    public string? FirstError { get; init; }

    /// <summary>Raw cells: ONNX Runtime sessions run side by side, one caller each (the service's cells: 0).</summary>
    public int Sessions { get; init; }

    /// <summary>Raw cells: intra-op threads per session.</summary>
    public int Threads { get; init; }

    public static string CsvHeader => "model,scenario,tasks,concurrency,round,images,seconds,images_per_s,cpu_ms_per_image,latency_p50_ms,latency_p95_ms,inference_ms_per_image,postprocess_ms,encode_ms,mean_batch,errors,cell_wall_s,raw_sessions,raw_threads";

    public string ToCsv() => string.Join(',', Model, Scenario, Tasks, I(Concurrency), I(Round), I(Images), F(Seconds), F(ImagesPerSecond), F(CpuMsPerImage), F(LatencyP50Ms), F(LatencyP95Ms), F(InferenceMsPerImage), F(PostprocessMs), F(EncodeMs), F(MeanBatch), I(Errors), F(WallSeconds), I(Sessions), I(Threads));

    /// <summary>A row written by <see cref="ToCsv"/>, back (images per second follows from images and seconds).</summary>
    public static CellResult FromCsv(string line)
    {
        var f = line.Split(',');
        if (f.Length != 19)
        {
            throw new ArgumentException($"a benchmark.csv row has 19 fields, this one {f.Length}: '{line}'");
        }

        return new CellResult
        {
            Model = f[0],
            Scenario = f[1],
            Tasks = f[2],
            Concurrency = PI(f[3]),
            Round = PI(f[4]),
            Images = PI(f[5]),
            Seconds = PF(f[6]),
            CpuMsPerImage = PF(f[8]),
            LatencyP50Ms = PF(f[9]),
            LatencyP95Ms = PF(f[10]),
            InferenceMsPerImage = PF(f[11]),
            PostprocessMs = PF(f[12]),
            EncodeMs = PF(f[13]),
            MeanBatch = PF(f[14]),
            Errors = PI(f[15]),
            WallSeconds = PF(f[16]),
            Sessions = PI(f[17]),
            Threads = PI(f[18]),
        };
    }

    private static int PI(string text) => int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    private static double PF(string text) => double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    private static string I(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string F(double value) => value.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture);
}
