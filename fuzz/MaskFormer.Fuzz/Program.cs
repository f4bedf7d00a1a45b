using MaskFormer.Fuzz;
using SharpFuzz;

// afl-fuzz ... -- dotnet MaskFormer.Fuzz.dll          one input per run, persistent (see fuzz/README.md)
// dotnet MaskFormer.Fuzz.dll corpus DIR                writes the seed corpus
// dotnet MaskFormer.Fuzz.dll replay DIR|FILE...        runs inputs once each; exit 1 on a contract violation
switch (args.FirstOrDefault())
{
    case "corpus":
        Corpus.Write(args[1]);
        return 0;
    case "replay":
        return Replay.Run(args[1..]);
    default:
        Fuzzer.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            FuzzTarget.Run(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        });
        return 0;
}
