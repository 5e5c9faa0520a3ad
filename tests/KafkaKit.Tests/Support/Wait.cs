namespace KafkaKit.Tests.Support;

/// <summary>Condition waits with deadlines (never fixed sleeps).</summary>
internal static class Wait
{
    /// <summary>Polls <paramref name="condition"/> every 20 ms until it holds or <paramref name="timeout"/> passes.</summary>
    /// <returns>Whether the condition held in time.</returns>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(20);
        }

        return true;
    }

    /// <summary>As <see cref="UntilAsync"/>, failing the test with <paramref name="what"/> when the condition does not hold in time.</summary>
    public static async Task ForAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        if (!await UntilAsync(condition, timeout))
        {
            Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s waiting for: {what}");
        }
    }

    /// <summary>Runs <paramref name="attempt"/> every 20 ms until it returns true, failing the test with <paramref name="what"/> when that takes longer than <paramref name="timeout"/>.</summary>
    public static async Task ForAsync(Func<Task<bool>> attempt, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await attempt())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s waiting for: {what}");
            }

            await Task.Delay(20);
        }
    }
}
