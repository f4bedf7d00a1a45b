namespace MaskFormer.Engine.Tracking;

/// <summary>
/// One object followed across frames: its last mask, when it was last seen, and the classes its last
/// frames gave it, whose vote is the track's class.
/// </summary>
internal sealed class Track(int id, int classId, RunMask mask, long frame, TimeSpan? time, int voteFrames)
{
    // The classes of the last frames the track was seen in, oldest overwritten first.
    private readonly int[] _votes = Votes(classId, voteFrames);
    private int _voteCount = 1;
    private int _nextVote = 1 % voteFrames;

    public int Id { get; } = id;

    public int ClassId { get; private set; } = classId;

    public RunMask Mask { get; private set; } = mask;

    public long LastFrame { get; private set; } = frame;

    public TimeSpan? LastTime { get; private set; } = time;

    public bool Expired(long frame, TimeSpan? time, TrackingOptions options) =>
        frame - LastFrame > options.MaxMissedFrames + 1
        || (time is { } now && LastTime is { } last && options.MaxMissedTime > TimeSpan.Zero && now - last > options.MaxMissedTime);

    /// <summary>Carries the track's mask to frames of another size (a stream whose output size changed).</summary>
    public void Resize((int Width, int Height) from, (int Width, int Height) to) =>
        Mask = Mask.Resized(from.Width, from.Height, to.Width, to.Height);

    /// <summary>The track seen again as a segment of <paramref name="classId"/>; returns the voted class.</summary>
    public int See(int classId, RunMask mask, long frame, TimeSpan? time)
    {
        Mask = mask;
        LastFrame = frame;
        LastTime = time;
        _votes[_nextVote] = classId;
        _nextVote = (_nextVote + 1) % _votes.Length;
        _voteCount = Math.Min(_voteCount + 1, _votes.Length);

        // Most votes wins; a tie keeps the class the track had, else goes to the latest of the tied.
        int best = ClassId, bestVotes = Count(ClassId);
        for (var back = 1; back <= _voteCount; back++)
        {
            var candidate = _votes[(_nextVote - back + _votes.Length) % _votes.Length];
            var votes = Count(candidate);
            if (votes > bestVotes)
            {
                (best, bestVotes) = (candidate, votes);
            }
        }

        ClassId = best;
        return best;
    }

    private int Count(int classId)
    {
        var count = 0;
        for (var i = 0; i < _voteCount; i++)
        {
            count += _votes[(_nextVote - 1 - i + (2 * _votes.Length)) % _votes.Length] == classId ? 1 : 0;
        }

        return count;
    }

    private static int[] Votes(int classId, int voteFrames)
    {
        var votes = new int[voteFrames];
        votes[0] = classId;
        return votes;
    }
}
