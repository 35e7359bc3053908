using System.Text;
using MtaSts.Actors.Smtp.Batv;

namespace MtaSts.Actors.Smtp.Tests.Batv;

public sealed class BounceAddressTaggerTests
{
    private static readonly BounceTagKey Key1 = new(1, Encoding.UTF8.GetBytes("first-secret-0123456789"));
    private static readonly BounceTagKey Key2 = new(2, Encoding.UTF8.GetBytes("second-secret-0123456789"));
    private static readonly DateTimeOffset Day0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    private static BounceAddressTagger Tagger(params BounceTagKey[] keys) =>
        new(keys.Length == 0 ? [Key1] : keys, TimeSpan.FromDays(7), ["example.org", ".corp.example"]);

    [Fact]
    public void A_tag_has_the_prvs_form_with_key_expiry_day_and_six_hex_digits()
    {
        var tagged = Tagger().Tag("alice@example.org", Day0);

        // 2026-12-01 is day 20788 since 1970-01-01; + 7 days = 20795 → 795.
        Assert.Matches("^prvs=1795[0-9a-f]{6}=alice@example\\.org$", tagged);
    }

    [Fact]
    public void A_tag_verifies_and_strips_to_the_original_address()
    {
        var t = Tagger();
        var check = t.Verify(t.Tag("alice@example.org", Day0), Day0.AddDays(3));

        Assert.Equal(BounceTagStatus.Valid, check.Status);
        Assert.Equal("alice@example.org", check.Address);
        Assert.Equal(1, check.KeyId);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bob@elsewhere.test")]
    [InlineData("corp.example-user@corp.example")]
    public void The_null_sender_and_foreign_domains_are_not_tagged(string sender) =>
        Assert.Equal(sender, Tagger().Tag(sender, Day0));

    [Fact]
    public void Subdomain_patterns_cover_subdomains_only()
    {
        var t = Tagger();
        Assert.StartsWith("prvs=", t.Tag("a@mail.corp.example", Day0));
        Assert.True(t.IsOurDomain("MAIL.Corp.Example."));
        Assert.False(t.IsOurDomain("corp.example"));
        Assert.False(t.IsOurDomain("xcorp.example"));
    }

    [Fact]
    public void An_address_tagged_already_is_not_tagged_twice()
    {
        var t = Tagger();
        var once = t.Tag("alice@example.org", Day0);
        Assert.Equal(once, t.Tag(once, Day0));
    }

    [Fact]
    public void A_tag_verifies_on_its_last_day_and_expires_the_day_after()
    {
        var t = Tagger();
        var tagged = t.Tag("alice@example.org", Day0);

        Assert.Equal(BounceTagStatus.Valid, t.Verify(tagged, Day0.AddDays(7)).Status);
        Assert.Equal(BounceTagStatus.Expired, t.Verify(tagged, Day0.AddDays(8)).Status);
        Assert.Equal(BounceTagStatus.Expired, t.Verify(tagged, Day0.AddDays(500)).Status);
    }

    [Fact]
    public void A_tag_valid_beyond_the_window_is_refused_as_expired()
    {
        // A forged expiry far ahead, signed with the right key (e.g. validity shortened since): outside the window.
        var longLived = new BounceAddressTagger([Key1], TimeSpan.FromDays(30), ["example.org"]);
        var tagged = longLived.Tag("alice@example.org", Day0);

        Assert.Equal(BounceTagStatus.Expired, Tagger().Verify(tagged, Day0).Status);
    }

    [Fact]
    public void The_day_stamp_wraps_at_1000_days()
    {
        // Day 20993 + 7 = 21000 → "000": still valid across the wrap.
        var nearWrap = DateTimeOffset.UnixEpoch.AddDays(20993).AddHours(5);
        var t = Tagger();
        var tagged = t.Tag("alice@example.org", nearWrap);

        Assert.StartsWith("prvs=1000", tagged);
        Assert.Equal(BounceTagStatus.Valid, t.Verify(tagged, nearWrap.AddDays(6)).Status);
        Assert.Equal(BounceTagStatus.Expired, t.Verify(tagged, nearWrap.AddDays(8)).Status);
    }

    [Fact]
    public void Key_rotation_new_mail_uses_the_newest_key_and_the_old_key_still_verifies()
    {
        var before = Tagger(Key1);
        var oldTag = before.Tag("alice@example.org", Day0);

        var rotated = Tagger(Key1, Key2);
        var newTag = rotated.Tag("alice@example.org", Day0.AddDays(1));

        Assert.StartsWith("prvs=2", newTag);
        Assert.Equal(BounceTagStatus.Valid, rotated.Verify(oldTag, Day0.AddDays(2)).Status);
        Assert.Equal(BounceTagStatus.Valid, rotated.Verify(newTag, Day0.AddDays(2)).Status);

        // The old key retired: its tags are refused, naming the key.
        var retired = Tagger(Key2);
        var check = retired.Verify(oldTag, Day0.AddDays(2));
        Assert.Equal(BounceTagStatus.UnknownKey, check.Status);
        Assert.Equal("tag signed with unknown key 1", check.Reason);
    }

    [Fact]
    public void A_different_secret_under_the_same_key_number_does_not_verify()
    {
        var tagged = Tagger(Key1).Tag("alice@example.org", Day0);
        var other = Tagger(new BounceTagKey(1, Encoding.UTF8.GetBytes("another-secret-0123456789")));
        Assert.Equal(BounceTagStatus.BadSignature, other.Verify(tagged, Day0).Status);
    }

    [Fact]
    public void Changes_of_case_by_the_bouncing_server_still_verify()
    {
        var t = Tagger();
        var tagged = t.Tag("Alice@Example.org", Day0);

        var upper = t.Verify(tagged.ToUpperInvariant(), Day0);
        Assert.Equal(BounceTagStatus.Valid, upper.Status);
        Assert.Equal("ALICE@EXAMPLE.ORG", upper.Address);
        Assert.Equal(BounceTagStatus.Valid, t.Verify(tagged.ToLowerInvariant(), Day0).Status);
    }

    [Fact]
    public void A_tag_moved_to_another_address_does_not_verify()
    {
        var t = Tagger();
        var tagged = t.Tag("alice@example.org", Day0);
        Assert.Equal(BounceTagStatus.BadSignature, t.Verify(tagged.Replace("alice@", "mallory@"), Day0).Status);
    }

    [Fact]
    public void A_changed_expiry_day_does_not_verify()
    {
        var t = Tagger();
        var tagged = t.Tag("alice@example.org", Day0); // prvs=1795xxxxxx=
        Assert.Equal(BounceTagStatus.BadSignature, t.Verify("prvs=1794" + tagged[9..], Day0).Status);
    }

    [Theory]
    [InlineData("prvs=1430abc=alice@example.org")]        // tag too short
    [InlineData("prvs=1430abcdefg=alice@example.org")]    // tag too long
    [InlineData("prvs=X430abcdef=alice@example.org")]     // key not a digit
    [InlineData("prvs=14a0abcdef=alice@example.org")]     // day not digits
    [InlineData("prvs=1430abcdeg=alice@example.org")]     // signature not hex
    [InlineData("prvs=1430abcdef=@example.org")]          // no original local part
    [InlineData("prvs=1430abcdef=alice@")]                // no domain
    [InlineData("prvs=1430abcdefalice@example.org")]      // no separator
    public void Malformed_tags_are_refused_as_malformed(string address) =>
        Assert.Equal(BounceTagStatus.Malformed, Tagger().Verify(address, Day0).Status);

    [Fact]
    public void An_untagged_address_is_reported_as_not_tagged()
    {
        var check = Tagger().Verify("alice@example.org", Day0);
        Assert.Equal(BounceTagStatus.NotTagged, check.Status);
        Assert.Equal("alice@example.org", check.Address);
    }

    [Fact]
    public void A_local_part_containing_equals_signs_round_trips()
    {
        var t = Tagger();
        var check = t.Verify(t.Tag("a=b=c@example.org", Day0), Day0);
        Assert.Equal(BounceTagStatus.Valid, check.Status);
        Assert.Equal("a=b=c@example.org", check.Address);
    }

    [Fact]
    public void Bad_key_sets_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new BounceAddressTagger([], TimeSpan.FromDays(7), ["example.org"]));
        Assert.Throws<ArgumentException>(() => new BounceAddressTagger([Key1, Key1], TimeSpan.FromDays(7), ["example.org"]));
        Assert.Throws<ArgumentException>(() => new BounceAddressTagger([new BounceTagKey(3, [1, 2, 3])], TimeSpan.FromDays(7), ["example.org"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BounceAddressTagger([new BounceTagKey(10, Key1.Secret)], TimeSpan.FromDays(7), ["example.org"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BounceAddressTagger([Key1], TimeSpan.FromHours(36), ["example.org"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BounceAddressTagger([Key1], TimeSpan.FromDays(31), ["example.org"]));
    }
}
