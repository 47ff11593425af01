use crm_proto::crm::customers::v1::*;

use crate::harness::*;

#[tokio::test]
async fn static_and_dynamic_segments_count_their_members() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut ids = Vec::new();
    for (name, country, stage) in [
        ("A", "DE", LifecycleStage::Customer),
        ("B", "DE", LifecycleStage::Lead),
        ("C", "FR", LifecycleStage::Customer),
    ] {
        let mut c = contact(name, "Person", "");
        c.address = Some(Address {
            country: country.into(),
            ..Default::default()
        });
        c.lifecycle_stage = stage as i32;
        ids.push(create_contact(&mut admin, c).await.id);
    }
    let german_customers = Filter {
        node: Some(filter::Node::All(FilterGroup {
            filters: vec![
                condition("country", Operator::Eq, string_value("de")),
                condition("lifecycle_stage", Operator::Eq, string_value("customer")),
            ],
        })),
    };
    let dynamic = admin
        .segments
        .create_segment(CreateSegmentRequest {
            request_id: String::new(),
            segment: Some(Segment {
                name: "German customers".into(),
                kind: SegmentKind::Dynamic as i32,
                filter: Some(german_customers),
                ..Default::default()
            }),
            contact_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    let counter = admin.segments.clone();
    let count = |segment_id: String| {
        let mut segments = counter.clone();
        async move {
            segments
                .count_segment_members(CountSegmentMembersRequest { segment_id })
                .await
                .unwrap()
                .into_inner()
                .count
        }
    };
    assert_eq!(count(dynamic.id.clone()).await, 1);

    let fixed = admin
        .segments
        .create_segment(CreateSegmentRequest {
            request_id: String::new(),
            segment: Some(Segment {
                name: "Hand picked".into(),
                kind: SegmentKind::Static as i32,
                ..Default::default()
            }),
            contact_ids: vec![ids[1].clone(), ids[2].clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    assert_eq!(count(fixed.id.clone()).await, 2);
    let members = admin
        .segments
        .list_segment_members(ListSegmentMembersRequest {
            segment_id: fixed.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .contacts;
    let mut member_ids: Vec<_> = members.iter().map(|c| c.id.clone()).collect();
    member_ids.sort();
    assert_eq!(member_ids, [ids[1].clone(), ids[2].clone()]);
    admin
        .segments
        .remove_segment_members(RemoveSegmentMembersRequest {
            segment_id: fixed.id.clone(),
            contact_ids: vec![ids[1].clone()],
        })
        .await
        .unwrap();
    assert_eq!(count(fixed.id.clone()).await, 1);

    let unknown = admin
        .segments
        .add_segment_members(AddSegmentMembersRequest {
            segment_id: fixed.id.clone(),
            contact_ids: vec![ids[0].clone(), uuid::Uuid::now_v7().to_string()],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&unknown), ["contact_ids[1]"]);
    let no_filter = admin
        .segments
        .create_segment(CreateSegmentRequest {
            request_id: String::new(),
            segment: Some(Segment {
                name: "x".into(),
                kind: SegmentKind::Dynamic as i32,
                ..Default::default()
            }),
            contact_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_filter), ["segment.filter"]);
}

/// Segments and visibility: a rep cannot add or remove contacts it cannot
/// see (they look like they do not exist), and only a segment's creator,
/// managers and admins delete it.
#[tokio::test]
async fn segment_members_follow_visibility_and_segments_their_creator() {
    use kit::auth::{Role, Visibility};
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let mut other_rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let hidden = create_contact(&mut admin, contact("Hidden", "Person", "")).await;
    let mine = create_contact(&mut rep, contact("Mine", "Person", "")).await;
    let segment = rep
        .segments
        .create_segment(CreateSegmentRequest {
            request_id: String::new(),
            segment: Some(Segment {
                name: "Rep's list".into(),
                kind: SegmentKind::Static as i32,
                ..Default::default()
            }),
            contact_ids: vec![mine.id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    let refused = rep
        .segments
        .add_segment_members(AddSegmentMembersRequest {
            segment_id: segment.id.clone(),
            contact_ids: vec![hidden.id.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("no such contact"), "{refused:?}");

    // The admin adds the hidden contact; the rep cannot take it out.
    admin
        .segments
        .add_segment_members(AddSegmentMembersRequest {
            segment_id: segment.id.clone(),
            contact_ids: vec![hidden.id.clone()],
        })
        .await
        .unwrap();
    let removed = rep
        .segments
        .remove_segment_members(RemoveSegmentMembersRequest {
            segment_id: segment.id.clone(),
            contact_ids: vec![hidden.id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 0);

    let refused = other_rep
        .segments
        .delete_segment(DeleteSegmentRequest {
            id: segment.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    rep.segments
        .delete_segment(DeleteSegmentRequest { id: segment.id })
        .await
        .unwrap();
}
