using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using KafkaKit.DependencyInjection;
using KafkaKit.Testing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace KafkaKit.Tests.Docs;

/// <summary>
/// Compiles every <c>```csharp</c> block of README.md and docs/*.md against KafkaKit, KafkaKit.Testing, the schema registry
/// packages, Confluent.Kafka and Microsoft.Extensions.Hosting. A snippet is a fragment: its statements go into an async method,
/// lines starting a type declaration (<c>public sealed class</c>, <c>record</c>...) go to namespace level, and an
/// HTML comment right above the fence, <c>&lt;!-- snippet-context: ... --&gt;</c>, supplies what the snippet uses
/// without declaring (variables, small supporting types), placed before the snippet's statements.
/// </summary>
[TestFixture]
public sealed partial class DocsSnippetTests
{
    private const string ContextMarker = "snippet-context:";

    private static readonly string[] GlobalUsings =
    [
        "System",
        "System.Collections.Generic",
        "System.Linq",
        "System.Threading",
        "System.Threading.Tasks",
        "Confluent.Kafka",
        "KafkaKit",
        "KafkaKit.Producing",
        "KafkaKit.Consuming",
        "KafkaKit.Testing",
        "Microsoft.Extensions.DependencyInjection",
        "Microsoft.Extensions.Hosting",
        "Microsoft.Extensions.Configuration",
        "KafkaKit.Serialization",
        "KafkaKit.SchemaRegistry",
        "KafkaKit.SchemaRegistry.Avro",
        "KafkaKit.SchemaRegistry.Json",
        "Confluent.SchemaRegistry",
        "Confluent.SchemaRegistry.Serdes",
    ];

    private static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);

    public static IEnumerable<TestCaseData> Snippets()
    {
        var root = FindRepositoryRoot();
        var files = new List<string> { Path.Combine(root, "README.md") };
        files.AddRange(Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Order(StringComparer.Ordinal));
        foreach (var file in files)
        {
            var relative = Path.GetRelativePath(root, file).Replace('\\', '/');
            foreach (var snippet in Extract(relative, File.ReadAllLines(file)))
            {
                yield return new TestCaseData(snippet).SetArgDisplayNames($"{relative}:{snippet.Line}");
            }
        }
    }

    [Test]
    public void Docs_ContainCSharpSnippets() =>
        Assert.That(Snippets().Count(), Is.GreaterThan(0), "no ```csharp blocks found in README.md or docs/*.md");

    [TestCaseSource(nameof(Snippets))]
    public void Compiles(DocSnippet snippet)
    {
        var source = Wrap(snippet);
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create(
            "DocSnippet_" + Guid.NewGuid().ToString("N"),
            [
                CSharpSyntaxTree.ParseText(GlobalUsingsSource(), parse, path: "GlobalUsings.cs"),
                CSharpSyntaxTree.ParseText(source, parse, path: snippet.File),
            ],
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();

        if (errors.Count > 0)
        {
            var message = new StringBuilder();
            message.AppendLine(CultureInfo.InvariantCulture, $"{snippet.File}:{snippet.Line}: {errors.Count} error(s)");
            foreach (var error in errors)
            {
                message.AppendLine(error.ToString());
            }

            message.AppendLine("--- compiled source ---");
            var lines = source.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                message.AppendLine(CultureInfo.InvariantCulture, $"{i + 1,4}: {lines[i].TrimEnd('\r')}");
            }

            Assert.Fail(message.ToString());
        }
    }

    private static IEnumerable<DocSnippet> Extract(string file, string[] lines)
    {
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].TrimStart();
            if (!fence.StartsWith("```", StringComparison.Ordinal))
            {
                continue;
            }

            var indent = lines[i].Length - fence.Length;
            var isCSharp = fence[3..].Trim() is "csharp" or "cs" or "c#";
            var start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++)
            {
                body.Add(lines[i].Length >= indent ? lines[i][indent..] : lines[i].TrimStart());
            }

            if (isCSharp)
            {
                yield return new DocSnippet(file, start + 1, string.Join('\n', body), ContextAbove(lines, start));
            }
        }
    }

    // The HTML comment ending on the line right above the fence, if it is a snippet-context comment.
    private static string ContextAbove(string[] lines, int fence)
    {
        var end = fence - 1;
        if (end < 0 || !lines[end].TrimEnd().EndsWith("-->", StringComparison.Ordinal))
        {
            return string.Empty;
        }

        var begin = end;
        while (begin >= 0 && !lines[begin].Contains("<!--", StringComparison.Ordinal))
        {
            begin--;
        }

        if (begin < 0)
        {
            return string.Empty;
        }

        var comment = string.Join('\n', lines[begin..(end + 1)]).Trim();
        comment = comment["<!--".Length..^"-->".Length].Trim();
        return comment.StartsWith(ContextMarker, StringComparison.Ordinal) ? comment[ContextMarker.Length..].Trim() : string.Empty;
    }

    private static string GlobalUsingsSource() =>
        string.Concat(GlobalUsings.Select(u => $"global using {u};\n"));

    private static string Wrap(DocSnippet snippet)
    {
        var types = new StringBuilder();
        var statements = new StringBuilder();
        Split(snippet.Context, types, statements);
        Split(snippet.Code, types, statements);

        return $$"""
            {{types}}
            internal static class DocSnippetHost
            {
                public static async Task Snippet()
                {
            {{statements}}
                    await Task.CompletedTask;
                }
            }
            """;
    }

    // Lines at column 0 that start a type declaration, up to the end of that declaration, go to namespace level;
    // everything else is a statement of the snippet method.
    private static void Split(string code, StringBuilder types, StringBuilder statements)
    {
        var lines = code.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (!TypeDeclarationStart().IsMatch(lines[i]))
            {
                statements.AppendLine(lines[i]);
                continue;
            }

            var depth = 0;
            var opened = false;
            for (; i < lines.Length; i++)
            {
                types.AppendLine(lines[i]);
                foreach (var c in lines[i])
                {
                    if (c == '{')
                    {
                        depth++;
                        opened = true;
                    }
                    else if (c == '}')
                    {
                        depth--;
                    }
                }

                if (depth <= 0 && (opened || lines[i].TrimEnd().EndsWith(';')))
                {
                    break;
                }
            }
        }
    }

    [GeneratedRegex(@"^((public|internal|file|sealed|abstract|static|partial|readonly)\s+)*(class|record|struct|interface|enum)\b")]
    private static partial Regex TypeDeclarationStart();

    private static string FindRepositoryRoot()
    {
        string start;
        try
        {
            start = TestContext.CurrentContext.TestDirectory;
        }
        catch (InvalidOperationException)
        {
            start = AppContext.BaseDirectory;
        }

        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KafkaKit.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"KafkaKit.sln not found above {start}");
    }

    private static IReadOnlyList<MetadataReference> LoadReferences()
    {
        // Make sure the assemblies the snippets use are loaded before the AppDomain is enumerated.
        Type[] anchors =
        [
            typeof(object),
            typeof(Confluent.Kafka.Message<,>),
            typeof(KafkaKitOptions),
            typeof(KafkaKitBuilder),
            typeof(EmbeddedKafkaCluster),
            typeof(Host),
            typeof(IHost),
            typeof(IConfiguration),
            typeof(ConfigurationBinder),
            typeof(Microsoft.Extensions.DependencyInjection.ServiceCollection),
            typeof(Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions),
            typeof(Microsoft.Extensions.Logging.ILogger),
            typeof(Microsoft.Extensions.Options.IOptions<>),
            typeof(Microsoft.Extensions.DependencyInjection.HealthCheckServiceCollectionExtensions),
            typeof(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus),
            typeof(KafkaKit.SchemaRegistry.Avro.AvroKafkaKitExtensions),
            typeof(KafkaKit.SchemaRegistry.Json.JsonSchemaKafkaKitExtensions),
            typeof(Confluent.SchemaRegistry.Serdes.AvroSerializer<>),
            typeof(Confluent.SchemaRegistry.Serdes.JsonSerializer<>),
        ];
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var assembly in anchors.Select(t => t.Assembly).Concat(AppDomain.CurrentDomain.GetAssemblies()))
        {
            if (!assembly.IsDynamic && !string.IsNullOrEmpty(assembly.Location))
            {
                paths.TryAdd(Path.GetFileNameWithoutExtension(assembly.Location), assembly.Location);
            }
        }

        if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string trusted)
        {
            foreach (var path in trusted.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                paths.TryAdd(Path.GetFileNameWithoutExtension(path), path);
            }
        }

        return paths.Values.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }
}

/// <summary>A fenced C# block of a markdown file; <see cref="Line"/> is the 1-based line of its opening fence.</summary>
public sealed record DocSnippet(string File, int Line, string Code, string Context)
{
    public override string ToString() => $"{File}:{Line}";
}
