using System.Reflection;
using MaskFormer.Engine;
using MaskFormer.Server.Streaming;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests.Observability;

/// <summary>Operators filter logs by event id (the README names some): each id means one event.</summary>
public sealed class EventIdTests
{
    [Fact]
    public void LoggerMessages_ServerAndEngine_EachEventIdUsedOnce()
    {
        var messages = new[] { typeof(SegmentationEngine).Assembly, typeof(IFrameSegmenter).Assembly }
            .SelectMany(assembly => assembly.GetTypes())
            .SelectMany(type => type.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(method => (Method: $"{method.DeclaringType!.Name}.{method.Name}", Attribute: method.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .ToList();

        var shared = messages
            .GroupBy(m => m.Attribute!.EventId)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Method))}")
            .ToList();

        Assert.True(messages.Count > 20, $"found only {messages.Count} logger messages; is the attribute still read?");
        Assert.True(shared.Count == 0, "event ids used by more than one message: " + string.Join("; ", shared));
    }
}
