using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>
/// Brute-force protection for SMTP AUTH, shared by all sessions of a listener: a failed attempt is answered after a
/// delay that doubles with the address's recent failures, and too many failures lock out the address (IPv6: its /64,
/// see <see cref="ClientKey"/>) or the user name for <see cref="AuthThrottleOptions.LockoutDuration"/>. Thread-safe
/// (one lock; every call is O(1)).
/// </summary>
/// <remarks>
/// <para>Use: <see cref="Check"/> before verifying credentials — when locked out, do not verify them at all (answer
/// 454 4.7.0 or 535 5.7.8), or a correct guess would still be confirmed; after a failed verification,
/// <see cref="RecordFailure"/> and wait <see cref="AuthFailure.Delay"/> before the 535; after success,
/// <see cref="RecordSuccess"/>.</para>
/// <para>Counting follows anvil's fixed window (see <see cref="ClientLimiter"/>): failures count in a
/// <see cref="AuthThrottleOptions.FailureWindow"/> opened by the first failure; reaching the limit locks the key until
/// a fixed time, which attempts during the lockout do not extend; when it ends the key starts from zero.</para>
/// <para>User names are opaque, compared ordinally (case-sensitive, like the gateway's user table), and throttled
/// whether or not the user exists, so neither the delay nor the lockout reveals which names exist. Names longer than
/// <see cref="MaxUserKeyLength"/> characters are keyed by their SHA-256, so a key's size is bounded.</para>
/// <para>Success clears the counters of that address and of that user name, but never lifts a lockout (a lockout cannot
/// end early: a success while locked — only possible if the caller skipped <see cref="Check"/> — changes nothing).
/// So a user locked because of guesses from B stays locked for A too; that is the price of per-user lockout (an
/// attacker can lock a known name out for <see cref="AuthThrottleOptions.LockoutDuration"/>), the same trade-off as
/// any account lockout policy. Also, an attacker holding one valid account can clear its address counter between
/// guesses; the per-user limit still caps guesses against every other name.</para>
/// <para>Memory: two tables (addresses, user names) of at most <c>maxTrackedKeys</c> entries each; expired entries
/// are swept opportunistically and, when a table is full, the least recently used entry is evicted even if it still
/// counts failures or holds a lockout (fail-open, as in <see cref="ClientLimiter"/>). <see cref="Check"/> adds no
/// entries, so a locked-out address cannot churn the tables.</para>
/// <para>The clock is <see cref="TimeProvider.GetTimestamp"/> (monotonic); lockout ends are reported in
/// <see cref="TimeProvider.GetUtcNow"/> time.</para>
/// </remarks>
public sealed class AuthThrottle
{
    /// <summary>Longest user name kept verbatim as a key; longer ones are keyed by their hash.</summary>
    public const int MaxUserKeyLength = 256;

    /// <summary>Default bound on each table (addresses, user names).</summary>
    public const int DefaultMaxTrackedKeys = 100_000;

    private const long NotLocked = long.MinValue;

    private readonly object _gate = new();
    private readonly AuthThrottleOptions _options;
    private readonly TimeProvider _time;
    private readonly long _origin;
    private readonly LruTable<ClientKey, Counter<ClientKey>> _addresses;
    private readonly LruTable<string, Counter<string>> _users;

    /// <param name="options">Validated here.</param>
    /// <param name="time">Clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="maxTrackedKeys">Bound on each table.</param>
    public AuthThrottle(AuthThrottleOptions options, TimeProvider? time = null, int maxTrackedKeys = DefaultMaxTrackedKeys)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTrackedKeys, 1);
        _options = options;
        _time = time ?? TimeProvider.System;
        _origin = _time.GetTimestamp();
        var window = options.FailureWindow.Ticks;
        _addresses = new LruTable<ClientKey, Counter<ClientKey>>(maxTrackedKeys, (e, now) => e.Expired(now, window));
        _users = new LruTable<string, Counter<string>>(maxTrackedKeys, (e, now) => e.Expired(now, window));
    }

    /// <summary>Addresses (or /64s) currently tracked.</summary>
    public int TrackedAddresses { get { lock (_gate) return _addresses.Count; } }

    /// <summary>User names currently tracked.</summary>
    public int TrackedUsers { get { lock (_gate) return _users.Count; } }

    /// <summary>Before verifying credentials: allowed, or locked out (which scopes, until when).</summary>
    public AuthCheck Check(IPAddress client, string user)
    {
        var a = ClientKey.From(client);
        var u = UserKey(user);
        lock (_gate)
        {
            var now = Now();
            var scope = AuthLockScope.None;
            var until = NotLocked;
            if (_addresses.TryGet(a, out var ae) && ae.IsLocked(now)) { scope |= AuthLockScope.Address; until = Math.Max(until, ae.LockedUntil); }
            if (_users.TryGet(u, out var ue) && ue.IsLocked(now)) { scope |= AuthLockScope.User; until = Math.Max(until, ue.LockedUntil); }
            return scope == AuthLockScope.None ? default : new AuthCheck(scope, At(until, now));
        }
    }

    /// <summary>After a failed verification: counts it for the address and the user name; returns the delay before the 535 and any lockout it just started.</summary>
    public AuthFailure RecordFailure(IPAddress client, string user)
    {
        var a = ClientKey.From(client);
        var u = UserKey(user);
        lock (_gate)
        {
            var now = Now();
            var lockUntil = now + _options.LockoutDuration.Ticks;
            var started = AuthLockScope.None;
            var ae = _addresses.GetOrAdd(a, now, static (k, t) => new Counter<ClientKey>(k, t));
            if (ae.Fail(now, _options.FailureWindow.Ticks, _options.MaxFailuresPerAddress, lockUntil)) started |= AuthLockScope.Address;
            var ue = _users.GetOrAdd(u, now, static (k, t) => new Counter<string>(k, t));
            if (ue.Fail(now, _options.FailureWindow.Ticks, _options.MaxFailuresPerUser, lockUntil)) started |= AuthLockScope.User;
            return new AuthFailure(DelayFor(ae.Failures), started, started == AuthLockScope.None ? default : At(lockUntil, now));
        }
    }

    /// <summary>After a successful verification: clears the failures of the address and of the user name, unless locked.</summary>
    public void RecordSuccess(IPAddress client, string user)
    {
        var a = ClientKey.From(client);
        var u = UserKey(user);
        lock (_gate)
        {
            var now = Now();
            if (_addresses.TryGet(a, out var ae) && !ae.IsLocked(now)) _addresses.Remove(ae);
            if (_users.TryGet(u, out var ue) && !ue.IsLocked(now)) _users.Remove(ue);
        }
    }

    /// <summary>The table key of a user name: itself (ordinal) up to <see cref="MaxUserKeyLength"/> chars, else a hash.</summary>
    internal static string UserKey(string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (user.Length <= MaxUserKeyLength) return user;
        // NUL never appears in a decoded SASL authcid, so hashed keys cannot collide with verbatim ones.
        return "\0sha256:" + Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(user.AsSpan())));
    }

    private TimeSpan DelayFor(int failures)
    {
        long b = _options.BaseDelay.Ticks, max = _options.MaxDelay.Ticks;
        var shift = Math.Max(failures - 1, 0);
        if (b == 0) return TimeSpan.Zero;
        if (shift >= 62 || b > max >> shift) return _options.MaxDelay;
        return TimeSpan.FromTicks(b << shift);
    }

    private long Now() => _time.GetElapsedTime(_origin).Ticks;

    private DateTimeOffset At(long ticks, long now) => _time.GetUtcNow() + TimeSpan.FromTicks(ticks - now);

    private sealed class Counter<TKey>(TKey key, long now) : LruEntry<TKey, Counter<TKey>>(key) where TKey : notnull
    {
        public long WindowStart = now;
        public int Failures;
        public long LockedUntil = NotLocked;

        public bool IsLocked(long now) => LockedUntil != NotLocked && now < LockedUntil;

        public bool Expired(long now, long window) => !IsLocked(now) && now - WindowStart >= window;

        /// <summary>Counts one failure; true when it starts a lockout.</summary>
        public bool Fail(long now, long window, int max, long lockUntil)
        {
            if ((LockedUntil != NotLocked && now >= LockedUntil) || (LockedUntil == NotLocked && now - WindowStart >= window))
            {
                WindowStart = now;
                Failures = 0;
                LockedUntil = NotLocked;
            }
            if (Failures < int.MaxValue) Failures++;
            if (max == 0 || Failures < max || IsLocked(now)) return false;
            LockedUntil = lockUntil;
            return true;
        }
    }
}

/// <summary>Which keys a lockout applies to.</summary>
[Flags]
public enum AuthLockScope
{
    /// <summary>Not locked.</summary>
    None = 0,
    /// <summary>The client address (IPv6: its /64).</summary>
    Address = 1,
    /// <summary>The user name, from every address.</summary>
    User = 2,
}

/// <summary>Outcome of <see cref="AuthThrottle.Check"/>; default = allowed.</summary>
/// <param name="LockedOut">The scopes locked; None when allowed.</param>
/// <param name="Until">When the (latest) lockout ends; default when allowed.</param>
public readonly record struct AuthCheck(AuthLockScope LockedOut, DateTimeOffset Until)
{
    /// <summary>True when credentials may be verified.</summary>
    public bool Allowed => LockedOut == AuthLockScope.None;
}

/// <summary>Outcome of <see cref="AuthThrottle.RecordFailure"/>.</summary>
/// <param name="Delay">Wait this long before sending the 535 reply.</param>
/// <param name="LockoutStarted">Scopes this failure just locked (log one line when not None); None otherwise.</param>
/// <param name="LockedUntil">When that lockout ends; default when none started.</param>
public readonly record struct AuthFailure(TimeSpan Delay, AuthLockScope LockoutStarted, DateTimeOffset LockedUntil)
{
    /// <summary>True when this failure started a lockout.</summary>
    public bool TriggeredLockout => LockoutStarted != AuthLockScope.None;
}
