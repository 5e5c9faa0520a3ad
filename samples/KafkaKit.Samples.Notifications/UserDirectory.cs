using System.Buffers;

namespace KafkaKit.Samples.Notifications;

/// <summary>A user the sample knows.</summary>
/// <param name="Id">The user id (lower case, for example <c>alice</c>).</param>
/// <param name="Name">The display name.</param>
public sealed record User(string Id, string Name);

/// <summary>The sample's user directory: a few seeded users, in memory (a real service would ask its user store).</summary>
internal sealed class UserDirectory
{
    /// <summary>The longest user id.</summary>
    public const int MaxIdLength = 32;

    private static readonly SearchValues<char> IdChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-_");

    private readonly Dictionary<string, User> _users;

    public UserDirectory(IEnumerable<User> users)
    {
        _users = users.ToDictionary(u => u.Id, StringComparer.Ordinal);
        All = [.. _users.Values.OrderBy(u => u.Id, StringComparer.Ordinal)];
    }

    /// <summary>Gets the sample's seeded users: alice, bob, carol and dave.</summary>
    public static UserDirectory Seeded { get; } =
        new([new("alice", "Alice Andersen"), new("bob", "Bob Brown"), new("carol", "Carol Chen"), new("dave", "Dave Diaz")]);

    /// <summary>Gets every user, ordered by id.</summary>
    public IReadOnlyList<User> All { get; }

    /// <summary>Tells whether <paramref name="id"/> has the form of a user id: 1 to 32 of <c>a-z 0-9 - _</c>, starting with a letter.</summary>
    /// <param name="id">The candidate.</param>
    /// <returns><see langword="true"/> when well formed.</returns>
    public static bool IsWellFormedId(string id) =>
        id.Length is > 0 and <= MaxIdLength && char.IsAsciiLetterLower(id[0]) && !id.AsSpan().ContainsAnyExcept(IdChars);

    /// <summary>Finds a user.</summary>
    /// <param name="id">The user id.</param>
    /// <param name="user">The user, when known.</param>
    /// <returns><see langword="true"/> when the user exists.</returns>
    public bool TryGet(string id, out User user) => _users.TryGetValue(id, out user!);

    /// <summary>Tells whether the user exists.</summary>
    /// <param name="id">The user id.</param>
    /// <returns><see langword="true"/> when the user exists.</returns>
    public bool Contains(string id) => _users.ContainsKey(id);
}
