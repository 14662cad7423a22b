//! A hard-coded extract of Microsoft's "Product names and service plan
//! identifiers for licensing" table: real SKU ids, part numbers and service
//! plans (each product trimmed to a handful of its plans), plus one add-on
//! that is deliberately absent from Microsoft's table.

/// One product of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CatalogSku {
    /// `skuPartNumber` (the CSV's `String_Id`).
    pub part_number: &'static str,
    /// `skuId` (the CSV's `GUID`).
    pub sku_id: &'static str,
    /// `Product_Display_Name`.
    pub display_name: &'static str,
    /// `(servicePlanName, servicePlanId)` pairs.
    pub plans: &'static [(&'static str, &'static str)],
}

/// Part number of the add-on that is not in Microsoft's table.
pub const UNKNOWN_SKU_PART_NUMBER: &str = "CONTOSO_CUSTOM_ADDON";
/// skuId of the add-on that is not in Microsoft's table.
pub const UNKNOWN_SKU_ID: &str = "7c8e2f3a-5b1d-4e9a-9f06-2d4b8a1c3e57";

/// The products the simulated tenant subscribes to, in the order
/// `subscribedSkus` lists them.
pub const CATALOG: &[CatalogSku] = &[
    CatalogSku {
        part_number: "SPE_E3",
        sku_id: "05e9a617-0261-4cee-bb44-138d3ef5d965",
        display_name: "Microsoft 365 E3",
        plans: &[
            (
                "EXCHANGE_S_ENTERPRISE",
                "efb87545-963c-4e0d-99df-69c6916d9eb0",
            ),
            (
                "SHAREPOINTENTERPRISE",
                "5dbe027f-2339-4123-9542-606e4d348a72",
            ),
            ("OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38"),
            ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929"),
            ("MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c"),
            ("INTUNE_A", "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"),
            ("AAD_PREMIUM", "41781fb2-bc02-4b7c-bd55-b576c07bb09d"),
            ("MICROSOFT_LOOP", "c4b8c31a-fb44-4c65-9837-a21f55fcabda"),
            ("KAIZALA_O365_P3", "aebd3021-9f8f-4bf8-bbe3-0ed2f4f047a1"),
        ],
    },
    CatalogSku {
        part_number: "SPE_E5",
        sku_id: "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
        display_name: "Microsoft 365 E5",
        plans: &[
            (
                "EXCHANGE_S_ENTERPRISE",
                "efb87545-963c-4e0d-99df-69c6916d9eb0",
            ),
            (
                "SHAREPOINTENTERPRISE",
                "5dbe027f-2339-4123-9542-606e4d348a72",
            ),
            ("OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38"),
            ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929"),
            ("MCOEV", "4828c8ec-dc2e-4779-b502-87ac9ce28ab7"),
            ("MCOMEETADV", "3e26ee1f-8a5f-4d52-aee2-b81ce45c8f40"),
            ("BI_AZURE_P2", "70d33638-9c74-4d01-bfd3-562de28bd4ba"),
            ("AAD_PREMIUM_P2", "eec0eb4f-6444-4f95-aba0-50c24d67f998"),
            ("ATP_ENTERPRISE", "f20fedf3-f3c3-43c3-8267-2bfdd51c0939"),
            ("WINDEFATP", "871d91ec-ec1a-452b-a83f-bd76c7d770ef"),
        ],
    },
    CatalogSku {
        part_number: "ENTERPRISEPACK",
        sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900",
        display_name: "Office 365 E3",
        plans: &[
            (
                "EXCHANGE_S_ENTERPRISE",
                "efb87545-963c-4e0d-99df-69c6916d9eb0",
            ),
            (
                "SHAREPOINTENTERPRISE",
                "5dbe027f-2339-4123-9542-606e4d348a72",
            ),
            ("OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38"),
            ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929"),
            ("MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c"),
            ("YAMMER_ENTERPRISE", "7547a3fe-08ee-4ccb-b430-5077c5041653"),
            ("SWAY", "a23b959c-7ce8-4e57-9140-b90eb88a9e97"),
            ("FORMS_PLAN_E3", "2789c901-c14e-48ab-a76a-be334d9d793a"),
        ],
    },
    CatalogSku {
        part_number: "O365_BUSINESS_PREMIUM",
        sku_id: "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
        display_name: "Microsoft 365 Business Standard",
        plans: &[
            (
                "EXCHANGE_S_STANDARD",
                "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
            ),
            ("SHAREPOINTSTANDARD", "c7699d2e-19aa-44de-8edf-1736da088ca1"),
            ("OFFICE_BUSINESS", "094e7854-93fc-4d55-b2c0-3ab5369ebdc1"),
            ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929"),
            ("MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c"),
            ("MICROSOFTBOOKINGS", "199a5c09-e0ca-4e37-8f7c-b05d533e1ea2"),
            ("FORMS_PLAN_E1", "159f4cd6-e380-449f-a816-af1a9ef76344"),
            ("BPOS_S_TODO_1", "5e62787c-c316-451f-b873-1d05acd4d12c"),
        ],
    },
    CatalogSku {
        part_number: "EMS",
        sku_id: "efccb6f7-5641-4e0e-bd10-b4976e1bf68e",
        display_name: "Enterprise Mobility + Security E3",
        plans: &[
            ("AAD_PREMIUM", "41781fb2-bc02-4b7c-bd55-b576c07bb09d"),
            ("RMS_S_PREMIUM", "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3"),
            (
                "ADALLOM_S_DISCOVERY",
                "932ad362-64a8-4783-9106-97849a1a30b9",
            ),
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
            ("RMS_S_ENTERPRISE", "bea4c11e-220a-4e6d-8eb8-8ea15d019f90"),
            ("MFA_PREMIUM", "8a256a2b-b617-496d-b51b-e76466e88db0"),
            ("INTUNE_A", "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"),
        ],
    },
    CatalogSku {
        part_number: "POWER_BI_PRO",
        sku_id: "f8a1db68-be16-40ed-86d5-cb42ce701560",
        display_name: "Power BI Pro",
        plans: &[
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
            ("BI_AZURE_P2", "70d33638-9c74-4d01-bfd3-562de28bd4ba"),
        ],
    },
    CatalogSku {
        part_number: "PROJECTPREMIUM",
        sku_id: "09015f9f-377f-4538-bbb5-f75ceb09358a",
        display_name: "Project Online Premium",
        plans: &[
            (
                "PROJECT_CLIENT_SUBSCRIPTION",
                "fafd7243-e5c1-4a3a-9e40-495efcb1d3c3",
            ),
            ("SHAREPOINT_PROJECT", "fe71d6c3-a2ea-4499-9778-da042bf08063"),
            (
                "SHAREPOINTENTERPRISE",
                "5dbe027f-2339-4123-9542-606e4d348a72",
            ),
            ("SHAREPOINTWAC", "e95bec33-7c88-4a70-8e19-b10bd9d0c014"),
        ],
    },
    CatalogSku {
        part_number: "VISIOCLIENT",
        sku_id: "c5928f49-12ba-48f7-ada3-0d743a3601d5",
        display_name: "Visio Plan 2",
        plans: &[
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
            ("ONEDRIVE_BASIC", "da792a53-cbc0-4184-a10d-e544dd34b3c1"),
            (
                "VISIO_CLIENT_SUBSCRIPTION",
                "663a804f-1c30-4ff0-9915-9db84f0d1cea",
            ),
            ("VISIOONLINE", "2bdbaf8f-738f-4ac7-9234-3c3ee2ce7d0f"),
        ],
    },
    CatalogSku {
        part_number: "FLOW_FREE",
        sku_id: "f30db892-07e9-47e9-837c-80727f46fd3d",
        display_name: "Microsoft Power Automate Free",
        plans: &[
            ("DYN365_CDS_VIRAL", "17ab22cd-a0b3-4536-910a-cb6eb12696c0"),
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
            ("FLOW_P2_VIRAL", "50e68c76-46c6-4674-81f9-75456511b170"),
        ],
    },
    CatalogSku {
        part_number: "AAD_PREMIUM_P2",
        sku_id: "84a661c4-e949-4bd2-a560-ed7766fcaf2b",
        display_name: "Microsoft Entra ID P2",
        plans: &[
            ("AAD_PREMIUM", "41781fb2-bc02-4b7c-bd55-b576c07bb09d"),
            ("AAD_PREMIUM_P2", "eec0eb4f-6444-4f95-aba0-50c24d67f998"),
            (
                "ADALLOM_S_DISCOVERY",
                "932ad362-64a8-4783-9106-97849a1a30b9",
            ),
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
            ("MFA_PREMIUM", "8a256a2b-b617-496d-b51b-e76466e88db0"),
        ],
    },
    CatalogSku {
        part_number: "Microsoft_365_Copilot",
        sku_id: "639dec6b-bb19-468b-871c-c5c441c4b0cb",
        display_name: "Microsoft Copilot for Microsoft 365",
        plans: &[
            (
                "GRAPH_CONNECTORS_COPILOT",
                "82d30987-df9b-4486-b146-198b21d164c7",
            ),
            (
                "M365_COPILOT_INTELLIGENT_SEARCH",
                "931e4a88-a67f-48b5-814f-16a5f1e6028d",
            ),
            (
                "M365_COPILOT_BUSINESS_CHAT",
                "3f30311c-6b1e-48a4-ab79-725b469da960",
            ),
            ("M365_COPILOT_TEAMS", "b95945de-b3bd-46db-8437-f2beb6ea2347"),
            ("M365_COPILOT_APPS", "a62f8878-de10-42f3-b68f-6149a25ceb97"),
            (
                "M365_COPILOT_CONNECTORS",
                "89f1c4c8-0878-40f7-804d-869c9128ab5d",
            ),
        ],
    },
    CatalogSku {
        part_number: "TEAMS_EXPLORATORY",
        sku_id: "710779e8-3d4a-4c88-adb9-386c958d1fdf",
        display_name: "Microsoft Teams Exploratory",
        plans: &[
            (
                "EXCHANGE_S_STANDARD",
                "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
            ),
            ("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929"),
            ("MCO_TEAMS_IW", "42a3ec34-28ba-46b6-992f-db53a675ac5b"),
            (
                "PROJECTWORKMANAGEMENT",
                "b737dad2-2f6c-4c65-90e3-ca563267e8b9",
            ),
            ("SHAREPOINTWAC", "e95bec33-7c88-4a70-8e19-b10bd9d0c014"),
            ("FORMS_PLAN_E1", "159f4cd6-e380-449f-a816-af1a9ef76344"),
        ],
    },
    CatalogSku {
        part_number: "MCOPSTNC",
        sku_id: "47794cd0-f0e5-45c5-9033-2eb6b5fc84e0",
        display_name: "Communications Credits",
        plans: &[("MCOPSTNC", "505e180f-f7e0-4b65-91d4-00d670bbd18c")],
    },
    CatalogSku {
        part_number: UNKNOWN_SKU_PART_NUMBER,
        sku_id: UNKNOWN_SKU_ID,
        display_name: "Contoso Line-of-Business Add-on",
        plans: &[
            ("CONTOSO_LOB_PORTAL", "3b0f6c1e-8a4d-4f2b-9c7e-5d1a2b3c4d5e"),
            (
                "CONTOSO_LOB_ANALYTICS",
                "9e8d7c6b-5a49-4838-a726-150f4e3d2c1b",
            ),
            (
                "EXCHANGE_S_FOUNDATION",
                "113feb6c-3fe4-4440-bddc-54d774bf0318",
            ),
        ],
    },
];

/// Service plans whose `provisioningStatus` is not `Success` in the
/// simulated tenant: `(skuPartNumber, servicePlanName, status)`.
pub const PLAN_STATUS_OVERRIDES: &[(&str, &str, &str)] = &[
    ("SPE_E3", "KAIZALA_O365_P3", "Disabled"),
    ("SPE_E3", "MICROSOFT_LOOP", "PendingProvisioning"),
    ("SPE_E5", "WINDEFATP", "PendingInput"),
    ("ENTERPRISEPACK", "YAMMER_ENTERPRISE", "Disabled"),
    (
        "Microsoft_365_Copilot",
        "M365_COPILOT_CONNECTORS",
        "PendingActivation",
    ),
    (
        "Microsoft_365_Copilot",
        "GRAPH_CONNECTORS_COPILOT",
        "PendingProvisioning",
    ),
    ("PROJECTPREMIUM", "PROJECT_CLIENT_SUBSCRIPTION", "Disabled"),
];

/// Looks a product up by part number.
pub fn by_part_number(part_number: &str) -> Option<&'static CatalogSku> {
    CATALOG.iter().find(|s| s.part_number == part_number)
}

/// Looks a product up by skuId (case-insensitive).
pub fn by_sku_id(sku_id: &str) -> Option<&'static CatalogSku> {
    CATALOG
        .iter()
        .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
}
