namespace DualLora.Data;

/// <summary>
/// The three answer vocabularies the scene suite maps one Fashion-MNIST class to, indexed by label: its
/// name, its group and the body part it is worn on. The same item gets a different answer depending on
/// which the instruction asks for, which is one of the conflicts the suite is built to have. All words are
/// short and lower case, so the small model's vocabulary stays tiny.
/// </summary>
public static class ClothingVocabulary
{
    /// <summary>Short names, by label ("T-shirt/top" is "t-shirt", "Ankle boot" is "boot").</summary>
    public static readonly IReadOnlyList<string> Names =
        ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"];

    public const string Top = "top";
    public const string Footwear = "footwear";

    /// <summary>The group of each label: the tops and the footwear have several members, the rest one each.</summary>
    public static readonly IReadOnlyList<string> Groups =
        [Top, "bottom", Top, "one-piece", Top, Footwear, Top, Footwear, "accessory", Footwear];

    /// <summary>Where each label is worn (a bag is carried in the hand).</summary>
    public static readonly IReadOnlyList<string> BodyParts =
        ["torso", "legs", "torso", "body", "torso", "feet", "torso", "feet", "hand", "feet"];

    /// <summary>The groups with more than one member, the ones worth counting.</summary>
    public static readonly IReadOnlyList<string> CountedGroups = [Top, Footwear];
}
