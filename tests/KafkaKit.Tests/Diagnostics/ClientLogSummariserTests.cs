using System.Reflection;
using System.Text.RegularExpressions;
using KafkaKit.Diagnostics;
using KafkaKit.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace KafkaKit.Tests.Diagnostics;

[TestFixture]
public sealed class ClientLogSummariserTests
{
    private const string Refused = "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";

    [Test]
    public void ShouldLog_RepeatsWithinTheWindow_FirstWrittenRepeatsCountedSummaryWhenTheWindowCloses()
    {
        // Arrange
        var (summariser, time, logs) = Create();

        // Act: the first line, then 5 repeats (librdkafka's varying suffix included) within 30 s.
        var written = new List<bool> { summariser.ShouldLog(LogLevel.Warning, Refused + " (after 0ms in state CONNECT)") };
        for (var i = 0; i < 5; i++)
        {
            time.Advance(TimeSpan.FromSeconds(5));
            written.Add(summariser.ShouldLog(LogLevel.Warning, Refused + $" (after {i}ms in state CONNECT, {i + 1} identical error(s) suppressed)"));
        }

        var summariesBeforeTheWindowCloses = logs.Count(901);
        time.Advance(TimeSpan.FromSeconds(5)); // 30 s after the first: the timer closes the window

        // Assert
        var summary = logs.Lines.Single(l => l.EventId.Id == 901);
        Assert.Multiple(() =>
        {
            Assert.That(written, Is.EqualTo(new[] { true, false, false, false, false, false }));
            Assert.That(summariesBeforeTheWindowCloses, Is.Zero);
            Assert.That(summary.Message, Is.EqualTo($"client-1: repeats in the last 30 s: 5, of: {Refused}"));
            Assert.That(summary.Level, Is.EqualTo(LogLevel.Warning), "at the level of the line it summarises");
        });
    }

    [Test]
    public void ShouldLog_SameLineAfterTheWindowClosed_WrittenAgainAndANewWindowStarts()
    {
        var (summariser, time, logs) = Create();
        summariser.ShouldLog(LogLevel.Warning, Refused);
        summariser.ShouldLog(LogLevel.Warning, Refused);
        time.Advance(TimeSpan.FromSeconds(31));

        var again = summariser.ShouldLog(LogLevel.Warning, Refused);
        var repeat = summariser.ShouldLog(LogLevel.Warning, Refused);

        Assert.Multiple(() =>
        {
            Assert.That(again, Is.True, "a new window starts with a written line");
            Assert.That(repeat, Is.False);
            Assert.That(logs.Count(901), Is.EqualTo(1), "one summary for the first window");
        });
    }

    [Test]
    public void ShouldLog_DistinctLines_EachWrittenOnceAndSummarisedApart()
    {
        var (summariser, time, logs) = Create();
        var other = "3/3 brokers are down";

        var first = new[] { summariser.ShouldLog(LogLevel.Warning, Refused), summariser.ShouldLog(LogLevel.Warning, other) };
        var repeats = new[] { summariser.ShouldLog(LogLevel.Warning, Refused), summariser.ShouldLog(LogLevel.Warning, Refused), summariser.ShouldLog(LogLevel.Warning, other) };
        time.Advance(TimeSpan.FromSeconds(30));

        Assert.Multiple(() =>
        {
            Assert.That(first, Is.All.True);
            Assert.That(repeats, Is.All.False);
            Assert.That(logs.Lines.Where(l => l.EventId.Id == 901).Select(l => l.Message), Is.EquivalentTo(new[]
            {
                $"client-1: repeats in the last 30 s: 2, of: {Refused}",
                $"client-1: repeats in the last 30 s: 1, of: {other}",
            }));
        });
    }

    [Test]
    public void ShouldLog_NoRepeat_NoSummary()
    {
        var (summariser, time, logs) = Create();

        summariser.ShouldLog(LogLevel.Warning, Refused);
        time.Advance(TimeSpan.FromMinutes(2));
        summariser.Dispose();

        Assert.That(logs.Count(901), Is.Zero);
    }

    [Test]
    public void ShouldLog_MoreKindsThanCapacity_OldestWindowClosedEarlyMemoryBounded()
    {
        var (summariser, time, logs) = Create();
        summariser.ShouldLog(LogLevel.Warning, "line 0");
        summariser.ShouldLog(LogLevel.Warning, "line 0");
        time.Advance(TimeSpan.FromSeconds(2));

        for (var i = 1; i <= ClientLogSummariser.Capacity; i++)
        {
            Assert.That(summariser.ShouldLog(LogLevel.Warning, $"line {i}"), Is.True);
        }

        Assert.Multiple(() =>
        {
            Assert.That(logs.Lines.Single(l => l.EventId.Id == 901).Message, Is.EqualTo("client-1: repeats in the last 2 s: 1, of: line 0"), "the oldest window is closed early, with its real span");
            Assert.That(summariser.ShouldLog(LogLevel.Warning, "line 0"), Is.True, "its kind is tracked anew");
        });
    }

    [Test]
    public void Dispose_OpenWindowWithRepeats_WritesItsSummary()
    {
        var (summariser, time, logs) = Create();
        summariser.ShouldLog(LogLevel.Error, Refused);
        summariser.ShouldLog(LogLevel.Error, Refused);
        summariser.ShouldLog(LogLevel.Error, Refused);
        time.Advance(TimeSpan.FromSeconds(9.5));

        summariser.Dispose();
        time.Advance(TimeSpan.FromMinutes(1));

        Assert.That(logs.Lines.Where(l => l.EventId.Id == 901).Select(l => l.Message), Is.EqualTo(new[] { $"client-1: repeats in the last 10 s: 2, of: {Refused}" }));
    }

    /// <summary>No log message of the library joins a free-text value to a period or semicolon ("failed.." or "failed.;").</summary>
    [Test]
    public void LoggerMessages_NoTemplatePutsPunctuationAfterFreeText()
    {
        var bad = new List<string>();
        var methods = typeof(ClientLog).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .ToList();
        foreach (var (method, attribute) in methods)
        {
            var template = attribute!.Message;
            if (template.Contains("..", StringComparison.Ordinal) || template.Contains(".;", StringComparison.Ordinal))
            {
                bad.Add($"{attribute.EventId}: {template}");
            }

            foreach (Match placeholder in Regex.Matches(template, @"\{(\w+)\}[.;]"))
            {
                var parameter = method.GetParameters().FirstOrDefault(p => string.Equals(p.Name, placeholder.Groups[1].Value, StringComparison.OrdinalIgnoreCase));
                if (parameter?.ParameterType == typeof(string))
                {
                    bad.Add($"{attribute.EventId}: {{{placeholder.Groups[1].Value}}} (free text) is followed by punctuation in: {template}");
                }
            }
        }

        Assert.That(methods, Has.Count.GreaterThan(40), "the library's log methods were found");
        Assert.That(bad, Is.Empty);
    }

    private static (ClientLogSummariser Summariser, FakeTimeProvider Time, CapturingLoggerFactory Logs) Create()
    {
        var time = new FakeTimeProvider();
        var logs = new CapturingLoggerFactory();
        return (new ClientLogSummariser(logs.CreateLogger("KafkaKit.Test"), "client-1", time), time, logs);
    }
}
