namespace MaskFormer.Engine.Tracking;

/// <summary>
/// One object followed across frames: its last mask, when it was last seen, and the classes its last
/// frames gave it, whose vote is the track's class.
/// </summary>
internal sealed class Track(int id, int classId, RunMask mask, long frame, TimeSpan? time)
{
    // The classes of the last frames the track was seen in, oldest first. The window is the stream's
    // class_vote_frames as of each frame, so a later StreamConfig applies to tracks that exist already.
    private readonly List<int> _votes = [classId];

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

    /// <summary>
    /// The track seen again as a segment of <paramref name="classId"/>, voting over its last
    /// <paramref name="voteFrames"/> frames; returns the voted class.
    /// </summary>
    public int See(int classId, RunMask mask, long frame, TimeSpan? time, int voteFrames)
    {
        Mask = mask;
        LastFrame = frame;
        LastTime = time;
        _votes.Add(classId);
        if (_votes.Count > voteFrames)
        {
            _votes.RemoveRange(0, _votes.Count - voteFrames);
        }

        // Most votes wins; a tie keeps the class the track had, else goes to the latest of the tied.
        int best = ClassId, bestVotes = Count(ClassId);
        for (var i = _votes.Count - 1; i >= 0; i--)
        {
            var votes = Count(_votes[i]);
            if (votes > bestVotes)
            {
                (best, bestVotes) = (_votes[i], votes);
            }
        }

        ClassId = best;
        return best;
    }

    private int Count(int classId)
    {
        var count = 0;
        foreach (var vote in _votes)
        {
            count += vote == classId ? 1 : 0;
        }

        return count;
    }
}
