using System.Diagnostics;
using System.Runtime.InteropServices;

namespace KafkaKit.Soak;

/// <summary>Starts this soak program in a child process, with the .NET host that runs the current process.</summary>
public static class SoakProcess
{
    /// <summary>Describes <c>dotnet exec KafkaKit.Soak.dll <paramref name="args"/></c> with standard output and error redirected.</summary>
    /// <param name="args">The soak's arguments.</param>
    /// <returns>The start info; the caller starts and disposes the process.</returns>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(SoakProcess).Assembly.Location);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return start;
    }

    /// <summary>The <c>dotnet</c> executable of the runtime running this process (its shared framework lives three folders below it).</summary>
    private static string DotnetHost()
    {
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return File.Exists(host) ? host : "dotnet";
    }
}
